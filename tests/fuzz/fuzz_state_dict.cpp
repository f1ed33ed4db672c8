// Fuzz target: a checkpoint's bytes loaded into a model. The bytes are read
// as a safetensors file, then load_state_dict copies them into a small fixed
// model (Conv2d, BatchNorm2d with its int64 num_batches_tracked, Flatten,
// Linear): names, shapes and dtypes that do not fit must be refused with a
// basin::Error. A state that loads is then used the way a resumed run uses
// it, in one training-mode forward pass (whatever the values: NaN weights, a
// huge or negative batch count).
//
// load_state_dict checks everything before it writes, and a state that loads
// overwrites every tensor, so each input sees the model the same way however
// the inputs before it went.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "core/error.h"
#include "core/random.h"
#include "core/serialization.h"
#include "nn/layers.h"

namespace {

struct Fixture {
  std::shared_ptr<basin::nn::Sequential> model;
  basin::Tensor input;
};

// Built once: [2, 1, 4, 4] -> conv 3x3 -> [2, 2, 2, 2] -> batch norm -> [2, 8] -> linear -> [2, 3].
Fixture& fixture() {
  static Fixture f = [] {
    basin::manual_seed(1);
    Fixture made;
    made.model = std::make_shared<basin::nn::Sequential>(std::initializer_list<basin::nn::ModulePtr>{
        std::make_shared<basin::nn::Conv2d>(basin::nn::Conv2dOptions(1, 2, 3)),
        std::make_shared<basin::nn::BatchNorm2d>(2),
        std::make_shared<basin::nn::Flatten>(),
        std::make_shared<basin::nn::Linear>(8, 3),
    });
    made.input = basin::randn({2, 1, 4, 4});
    return made;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Fixture& f = fixture();
  try {
    const basin::TensorMap state =
        basin::load_safetensors_from_bytes(std::span<const std::uint8_t>(data, size), "fuzz input");
    f.model->load_state_dict(state);
  } catch (const basin::Error&) {
    return 0;
  }
  // A state that fits must run (outside the try: an error here is a bug).
  f.model->train();
  const basin::Tensor out = (*f.model)(f.input);
  if (out.shape() != basin::Shape{2, 3}) std::abort();
  return 0;
}

// Writes legacy_sam_checkpoint.safetensors: a checkpoint laid out as
// basin-train writes one (the model's tensors, the optimizer's state under
// "optimizer.", progress as metadata), taken from a small BatchNorm network
// after two SAM steps over SGD with momentum, and under "expected." the
// model's tensors after two more steps. It was built and run once, against
// basin at commit 71e44c7, before SAM became an Optimizer:
//
//   g++ -std=c++20 -O2 -I<basin at 71e44c7> tests/reference/gen_legacy_checkpoint.cpp \
//       <its build>/libbasin.a -lpthread [-L/usr/local/cuda/lib64 -lcudart -lcublas -lcudnn] -o gen
//   ./gen tests/reference/legacy_sam_checkpoint.safetensors
//
// The test "a checkpoint written before SAM became an Optimizer resumes
// bit for bit" (tests/optim/test_sam.cpp) loads it with today's code, takes
// the same two steps and requires the expected tensors exactly. Do not
// regenerate it with a newer basin: its point is to come from the old one.
#include <iostream>
#include <memory>

#include "core/loss.h"
#include "core/random.h"
#include "core/serialization.h"
#include "nn/layers.h"
#include "optim/sam.h"
#include "optim/sgd.h"

using namespace basin;

namespace {

std::shared_ptr<nn::Sequential> make_net() {
  manual_seed(2026);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1).bias(false)),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(), std::make_shared<nn::GlobalAvgPool2d>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4, 3)});
  net->train();
  return net;
}

void sam_steps(nn::Module& net, optim::SAM& sam, int first, int count) {
  for (int step = first; step < first + count; ++step) {
    manual_seed(100 + step);
    const Tensor x = randn({6, 3, 5, 5});
    const Tensor labels = from_vector<std::int64_t>({0, 1, 2, 0, 1, 2}, {6});
    sam.zero_grad();
    sam.step([&] {
      Tensor loss = cross_entropy(net(x), labels);
      loss.backward();
      return loss;
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: gen_legacy_checkpoint OUT.safetensors\n";
    return 2;
  }
  auto net = make_net();
  auto sgd = std::make_shared<optim::SGD>(net->named_parameters(),
                                          optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
  optim::SAM sam(sgd, optim::SAMOptions().rho(0.05), net.get());
  sam_steps(*net, sam, 0, 2);

  TensorMap file = net->state_dict();
  for (const auto& [name, tensor] : sgd->state_dict()) file["optimizer." + name] = tensor;
  for (auto& [name, tensor] : file) tensor = tensor.clone();
  sam_steps(*net, sam, 2, 2);
  for (const auto& [name, tensor] : net->state_dict()) file["expected." + name] = tensor.clone();
  save_safetensors(argv[1], file,
                   {{"format", "basin-checkpoint-1"}, {"epoch", "0"}, {"batch", "2"}, {"global_step", "2"}});
  std::cout << "wrote " << argv[1] << " (" << file.size() << " tensors)\n";
  return 0;
}

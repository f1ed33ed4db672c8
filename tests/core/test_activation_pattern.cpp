// Activation patterns: relu() and max_pool2d() recorded at one input and
// replayed at another compute the linear function of the recorded pieces.
#include <catch2/catch.hpp>

#include "core/activation_pattern.h"
#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/pool.h"
#include "core/reduce.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;

namespace {

// relu, then a 2x2 max pool with stride 1 (overlapping windows), summed with weights.
Tensor piecewise(const Tensor& x) {
  const Tensor weights = arange(0.0, 8.0, 1.0, TensorOptions(x.dtype()).device(x.device())).reshape({1, 2, 2, 2});
  return sum(mul(max_pool2d(relu(x), {2, 2}, {1, 1}), weights));
}

void check_replay(Device device) {
  const Tensor x = from_vector(std::vector<double>{0.5, -1.0, 2.0, 0.25, -0.5, 1.5, 3.0, -2.0, 0.75,
                                                    -0.1, 0.2, -0.3, 0.4, -0.6, 0.7, 0.8, -0.9, 1.1},
                               {1, 2, 3, 3})
                       .to(device);
  // Every input moves across a boundary: signs flip and the winners change.
  const Tensor moved = mul(x, -1.0);
  ActivationPattern pattern;
  Tensor recorded;
  {
    ActivationPatternScope scope(pattern, PatternMode::Record);
    recorded = piecewise(x);
  }
  CHECK(pattern.size() == 2);
  CHECK(recorded.item() == piecewise(x).item());  // recording changes nothing

  Tensor at_x = x.detach().clone().requires_grad_();
  Tensor at_moved = moved.detach().clone().requires_grad_();
  Tensor replayed_x, replayed_moved;
  {
    ActivationPatternScope scope(pattern, PatternMode::Replay);
    replayed_x = piecewise(at_x);
    scope.finish();
  }
  {
    ActivationPatternScope scope(pattern, PatternMode::Replay);
    replayed_moved = piecewise(at_moved);
    scope.finish();
  }
  CHECK(replayed_x.item() == recorded.item());
  // On the recorded pieces the function is linear: f(-x) = -f(x), which the
  // true relu and max pool are not.
  CHECK(replayed_moved.item() == -recorded.item());
  CHECK(piecewise(moved).item() != -recorded.item());
  replayed_x.backward();
  replayed_moved.backward();
  // The same linear map, so the same gradient wherever it is taken.
  CHECK(testing::equal(at_x.grad(), at_moved.grad()));
  Tensor plain = x.detach().clone().requires_grad_();
  piecewise(plain).backward();
  CHECK(testing::equal(at_x.grad(), plain.grad()));
}

}  // namespace

TEST_CASE("a replayed activation pattern computes the recorded pieces' linear function", "[autograd][pattern]") {
  check_replay(Device::cpu());
}

TEST_CASE("a replay that is not the recorded computation is an error", "[autograd][pattern][errors]") {
  const Tensor x = randn({1, 1, 4, 4});
  ActivationPattern pattern;
  {
    ActivationPatternScope scope(pattern, PatternMode::Record);
    relu(x);
    CHECK_THROWS_WITH(ActivationPatternScope(pattern, PatternMode::Replay), Catch::Contains("another scope"));
  }
  {
    ActivationPatternScope scope(pattern, PatternMode::Replay);
    CHECK_THROWS_WITH(max_pool2d(x, {2, 2}, {2, 2}), Catch::Contains("is max_pool2d of [1, 1, 4, 4] but relu"));
  }
  {
    ActivationPatternScope scope(pattern, PatternMode::Replay);
    CHECK_THROWS_WITH(relu(randn({2, 2})), Catch::Contains("is relu of [2, 2] but relu of [1, 1, 4, 4]"));
  }
  {
    ActivationPatternScope scope(pattern, PatternMode::Replay);
    CHECK_THROWS_WITH(scope.finish(), Catch::Contains("used 0 of the 1 recorded pieces"));
    relu(x);
    CHECK_NOTHROW(scope.finish());
    CHECK_THROWS_WITH(relu(x), Catch::Contains("relu call 2 was not recorded"));
  }
  // Outside a scope the ops are themselves again.
  CHECK(testing::equal(relu(mul(x, -1.0)), relu(mul(x, -1.0))));
}

TEST_CASE("activation patterns replay on CUDA as on the CPU", "[autograd][pattern][cuda]") {
  BASIN_REQUIRE_CUDA();
  check_replay(Device::cuda());
}

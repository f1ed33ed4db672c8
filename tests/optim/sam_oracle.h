// The SAM tests hold two implementations to the same checks: basin's
// optim::SAM (fused kernels over the parameter arena) and PerTensorSam, the
// same math written tensor by tensor with core ops, the way an eager
// framework runs it. The oracle shares no kernel with the fused path, so
// agreement between the two is evidence for both.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "optim/sam.h"

namespace basin::testing {

// What a SAM test calls, whichever implementation is under test.
class SamUnderTest {
 public:
  virtual ~SamUnderTest() = default;
  virtual void first_step() = 0;
  virtual void second_step() = 0;
  virtual Tensor step(const optim::Closure& closure) = 0;
  virtual void zero_grad() = 0;
  virtual Tensor last_grad_norm() const = 0;
  virtual bool last_step_finite() const = 0;
};

// fused: optim::SAM; otherwise the per-tensor oracle. Both take the same
// options, base optimizer and model, and check them the same way (the oracle
// builds an optim::SAM first, for its checks, and never steps it).
std::unique_ptr<SamUnderTest> make_sam(bool fused, std::shared_ptr<optim::Optimizer> base,
                                       const optim::SAMOptions& options, nn::Module* model = nullptr);

// The three flavours every SAM test runs: SAM, ASAM on "weight" tensors
// (SamsungLabs/ASAM) and ASAM on every tensor (davda54's variant).
inline std::vector<optim::SAMOptions> option_cases() {
  return {optim::SAMOptions().rho(0.05), optim::SAMOptions().rho(0.5).adaptive(true).eta(0.01),
          optim::SAMOptions().rho(0.5).adaptive(true).scope(optim::AsamScope::AllTensors)};
}

// "SAM", "ASAM (weights)" or "ASAM (all tensors)", for messages.
inline std::string describe(const optim::SAMOptions& o) {
  if (!o.adaptive()) return "SAM";
  return o.scope() == optim::AsamScope::AllTensors ? "ASAM (all tensors)" : "ASAM (weights)";
}

}  // namespace basin::testing

// Op test tables: one declarative description of an op's test cases drives
// the finite-difference gradient checks, the CUDA-vs-CPU parity checks and
// the bad-input checks (ggml's tests/test-backend-ops is the model).
//
// A test file lists its cases once:
//
//   std::vector<OpCase> elementwise_cases() {
//     return {
//         {"add broadcast", [](const auto& x) { return add(x[0], x[1]); }, {input({2, 3, 5}), input({3, 1})}},
//         {.name = "log", .fn = [](const auto& x) { return log(x[0]); }, .inputs = {input({3, 5}, positive())}},
//     };
//   }
//
// and one test case per runner walks the table, one Catch section per case
// (and per dtype for parity), so a failure names its case:
//
//   TEST_CASE("elementwise ops match finite differences", "[elementwise][gradcheck]") {
//     run_gradient_checks(elementwise_cases());
//   }
//   TEST_CASE("elementwise CUDA kernels match the CPU kernels", "[elementwise][cuda]") {
//     run_cuda_parity(elementwise_cases());
//   }
//
// A runner may take part of a table (a filter on the cases), so that one table
// can feed several test cases without a case running twice:
//
//   run_cuda_parity(softmax_cases(), through_autograd);  // the op and its gradient
//   run_cuda_parity(softmax_cases(), kernels_only);      // the kernels called directly
//
// Inputs are drawn afresh for every case from a seed derived from the case's
// name (and dtype), so a case draws the same numbers wherever it sits in its
// table and whichever cases a filter runs.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "support/gradcheck.h"

namespace basin::testing {

// ---------------------------------------------------------------- inputs

// Makes a CPU tensor of the given shape and dtype (values a domain cannot
// describe: labels, ties, NaNs, sorted data).
using MakeTensor = std::function<Tensor(const Shape&, DType)>;

// The values an input is drawn from, with the default generator.
struct Domain {
  enum class Kind { Normal, Uniform, AwayFrom, Integers, Custom };
  Kind kind = Kind::Normal;
  double a = 0.0, b = 1.0;          // Normal: mean, stddev. Uniform, AwayFrom, Integers: [a, b)
  std::vector<double> points = {};  // AwayFrom: the points (kinks, poles) to keep away from
  double margin = 0.0;              // AwayFrom: the smallest distance to any of them
  MakeTensor make = {};             // Custom

  // A CPU tensor of the shape and dtype, drawn from this domain.
  Tensor draw(const Shape& shape, DType dtype) const;
};

Domain normal(double mean = 0.0, double stddev = 1.0);
Domain uniform(double low, double high);
// Uniform in [low, high) with low > 0: for log, sqrt, division, negative powers.
Domain positive(double low = 0.1, double high = 3.0);
// Uniform in [low, high) but never within `margin` of any of `points`: for
// relu, abs, clamp and friends, so that no finite-difference step crosses a kink.
Domain away_from(std::vector<double> points, double margin, double low = -2.0, double high = 2.0);
// Uniform integers in [low, high): labels and indices.
Domain integers(std::int64_t low, std::int64_t high);
Domain custom(MakeTensor make);

struct InputSpec {
  Shape shape;  // the gradient check's shape, and parity's unless parity_shape is set
  Domain domain = normal();
  std::optional<Shape> parity_shape = {};  // odd (never a multiple of a block or tile) shape for CUDA parity
  std::optional<DType> dtype = {};         // a dtype of its own (labels, indices); unset: the dtype under test
  bool requires_grad = true;               // differentiated by both runners (floating inputs only)

  const Shape& shape_for_parity() const { return parity_shape ? *parity_shape : shape; }
};

// A differentiable floating input.
InputSpec input(Shape shape, Domain domain = normal());
// The same, with a larger odd shape for CUDA parity.
InputSpec input(Shape shape, Shape parity_shape, Domain domain = normal());
// A floating input that is not differentiated (running statistics, an upstream gradient).
InputSpec input_no_grad(Shape shape, Domain domain = normal());
InputSpec input_no_grad(Shape shape, Shape parity_shape, Domain domain = normal());
// An integer input (indices, labels) in [0, high), always of the given dtype.
InputSpec indices(Shape shape, std::int64_t high, DType dtype = kInt64);

// ---------------------------------------------------------------- outputs and tolerances

// What an op case returns: one tensor, or several (a kernel with several outputs).
struct Outputs {
  std::vector<Tensor> tensors;
  Outputs(Tensor tensor) : tensors{std::move(tensor)} {}           // NOLINT: a lambda returning Tensor converts
  Outputs(std::vector<Tensor> list) : tensors(std::move(list)) {}  // NOLINT
  Outputs(std::initializer_list<Tensor> list) : tensors(list) {}
};
using OpFn = std::function<Outputs(const std::vector<Tensor>&)>;

enum class Norm {
  Max,  // largest |got - want| against atol + rtol * largest |want|
  L2,   // ||got - want|| against atol + rtol * ||want||: rtol alone is relative_error (compare.h)
};

// How close a CUDA result must be to the CPU's.
struct Tolerance {
  double rtol = 0.0;
  double atol = 0.0;
  Norm norm = Norm::Max;
  bool nan_equal = false;  // a NaN matches a NaN in the same place (ops that propagate NaN)
};

struct Tolerances {
  Tolerance float32;
  Tolerance float64;
  const Tolerance& operator()(DType dtype) const { return dtype == kFloat32 ? float32 : float64; }
};

// max |got - want| <= tol * (1 + max |want|).
Tolerances scaled(double float32, double float64);
// max |got - want| <= tol.
Tolerances absolute(double float32, double float64);
// ||got - want|| <= tol * ||want||, i.e. relative_error(got, want) <= tol.
Tolerances relative(double float32, double float64);
// Bit for bit (kernels that add in the same order on both devices).
Tolerances exact(bool nan_equal = false);

// Whether got is within tolerance of want; on failure, why (the measure and the worst element).
// Integer tensors are compared exactly whatever the tolerance.
bool close_enough(const Tensor& got, const Tensor& want, const Tolerance& tolerance, std::string* why = nullptr);
// CHECK(close_enough(...)), with the reason in the failure message.
void check_close(const Tensor& got, const Tensor& want, const Tolerance& tolerance);

// ---------------------------------------------------------------- cases

// Which runners take a case. A case that is not differentiable must be Parity.
enum class Runs { Both, Gradients, Parity };

// What a CUDA parity run saw, for checks a case adds of its own.
struct ParityRun {
  DType dtype = kFloat32;
  std::vector<Tensor> inputs;       // as drawn, on the CPU, before either pass
  std::vector<Tensor> cpu_inputs;   // the CPU pass's inputs afterwards (in-place updates show here)
  std::vector<Tensor> cuda_inputs;  // the CUDA pass's
  std::vector<Tensor> expected;     // the CPU outputs
  std::vector<Tensor> got;          // the CUDA outputs
};

struct OpCase {
  std::string name = {};  // unique in its table; names the Catch section
  OpFn fn = {};           // runs the op on its inputs, on whichever device they are
  std::vector<InputSpec> inputs = {};
  Runs runs = Runs::Both;
  // false: parity compares the forward only and the gradient check does not
  // take the case (kernels called directly, integer results).
  bool differentiable = true;
  std::vector<DType> dtypes = {kFloat32, kFloat64};  // the dtypes parity runs in
  Tolerances tolerances = scaled(1e-5, 1e-12);       // parity: outputs, gradients, updated inputs
  GradcheckOptions gradcheck = {};
  bool all_compared = false;  // gradient check: every element compared, none skipped as a kink
  // Parity: fill the CUDA pool's free memory with NaN before each CUDA pass, so
  // that an output element a kernel forgets to write shows up as NaN.
  bool poison = false;
  std::function<void(const ParityRun&)> also = {};  // parity: further checks on the results
};

// ---------------------------------------------------------------- runners

// Finite-difference gradients (gradcheck.h) of the case's differentiable
// inputs, in float64 on the CPU, at the case's (small) shapes.
void check_gradients(const OpCase& op);

// The case on the CPU and on CUDA from the same inputs, at the parity shapes,
// in each of its dtypes (one Catch section each): the outputs, the inputs an
// op updates in place, and, for a differentiable case, the gradients of a
// shared random upstream gradient. Without a CUDA device it prints the skip
// marker (support/cuda.h) and returns.
void check_cuda_parity(const OpCase& op);

// The same comparison on the CPU: the case with the reference kernels and
// with the CPU engine's (core/cpu_engine.h), from the same inputs, in float32
// (float64 runs on the reference either way), at the case's float32 tolerance.
// Runs everywhere; no device needed.
void check_engine_parity(const OpCase& op);

// Which of a table's cases a runner takes; an empty filter takes them all.
using CaseFilter = std::function<bool(const OpCase&)>;
// The cases that run the op through autograd (differentiable), and those that
// call kernels directly (not differentiable): together, the whole table.
bool through_autograd(const OpCase& op);
bool kernels_only(const OpCase& op);

// The table's cases that pass the filter, each in a Catch section named after
// it: the gradient check takes those whose runs is not Parity, CUDA parity
// those whose runs is not Gradients. A repeated name anywhere in the table, or
// a filtered table that gives a runner nothing, fails.
void run_gradient_checks(const std::vector<OpCase>& table, const CaseFilter& filter = {});
void run_cuda_parity(const std::vector<OpCase>& table, const CaseFilter& filter = {});
void run_engine_parity(const std::vector<OpCase>& table, const CaseFilter& filter = {});

// One bad call: fn(inputs) must throw basin::Error whose message contains `message`.
struct BadInput {
  std::vector<Tensor> inputs;
  std::string message;
};
void check_bad_inputs(const OpFn& fn, const std::vector<BadInput>& cases);

// Leaves freed NaN blocks in the device's pool, so a kernel that forgets to
// write an output element is likely to show NaN rather than stale right values.
void poison_free_memory(Device device);

// The seed a case draws from: a hash of its name and, for parity, the dtype.
std::uint64_t case_seed(const std::string& name, DType dtype);

}  // namespace basin::testing

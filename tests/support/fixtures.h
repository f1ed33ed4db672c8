// Reference fixtures: safetensors files written by the generator scripts in
// tests/reference/ (PyTorch) and committed as data. Tests never run Python.
#pragma once

#include <string>

#include "core/serialization.h"

namespace basin::testing {

// Loads tests/reference/<name> (e.g. "core_softmax_ce.safetensors"). A missing
// fixture throws basin::Error with the command that regenerates it
// (/usr/bin/python3 tests/reference/gen_*.py, the script that names the file).
TensorMap load_fixture(const std::string& name);

// The named tensor of a fixture; throws basin::Error naming the missing key and
// listing the keys the fixture has.
Tensor fixture_tensor(const TensorMap& fixture, const std::string& key);

}  // namespace basin::testing

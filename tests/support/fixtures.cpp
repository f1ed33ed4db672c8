#include "support/fixtures.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

#ifndef BASIN_TEST_REFERENCE_DIR
#error "BASIN_TEST_REFERENCE_DIR must name tests/reference (set in tests/CMakeLists.txt)"
#endif

namespace basin::testing {
namespace {

namespace fs = std::filesystem;

// The generator scripts beside the fixtures, sorted for a stable message.
std::vector<std::string> generators(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string file = item.path().filename().string();
    if (file.starts_with("gen_") && file.ends_with(".py")) found.push_back(file);
  }
  std::sort(found.begin(), found.end());
  return found;
}

bool mentions(const fs::path& script, const std::string& name) {
  std::ifstream in(script);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return text.find(name) != std::string::npos;
}

// The command that (re)writes a fixture: the generator whose source names the
// file, else the one whose stem starts the name ("gen_softmax.py" for
// "softmax_ce.safetensors"), else every generator, since the fixture may be
// new and its script not yet written.
std::string regenerate_hint(const fs::path& dir, const std::string& name) {
  const std::vector<std::string> scripts = generators(dir);
  std::vector<std::string> chosen;
  for (const std::string& script : scripts) {
    if (mentions(dir / script, name)) chosen.push_back(script);
  }
  if (chosen.empty()) {
    for (const std::string& script : scripts) {
      const std::string_view stem = std::string_view(script).substr(4, script.size() - 4 - 3);
      if (!stem.empty() && std::string_view(name).starts_with(stem)) chosen.push_back(script);
    }
  }
  if (chosen.empty()) chosen = scripts;
  if (chosen.empty()) return "run its generator, /usr/bin/python3 tests/reference/gen_<name>.py (none exists yet)";
  std::string hint = chosen.size() == 1 ? "run" : "run one of";
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    hint += (i == 0 ? " " : ", ") + ("/usr/bin/python3 tests/reference/" + chosen[i]);
  }
  return hint;
}

}  // namespace

TensorMap load_fixture(const std::string& name) {
  const fs::path dir = BASIN_TEST_REFERENCE_DIR;
  const fs::path path = dir / name;
  std::error_code ec;
  BASIN_CHECK(fs::is_regular_file(path, ec), "load_fixture: ", path.string(), " does not exist; ",
              regenerate_hint(dir, name), " from the repository root (needs python3-torch)");
  return load_safetensors(path.string());
}

Tensor fixture_tensor(const TensorMap& fixture, const std::string& key) {
  const auto it = fixture.find(key);
  if (it == fixture.end()) {
    std::string keys;
    for (const auto& [name, tensor] : fixture) keys += (keys.empty() ? "" : ", ") + name;
    BASIN_FAIL("fixture_tensor: no tensor \"", key, "\" in the fixture; it holds ",
               keys.empty() ? std::string("no tensors") : "[" + keys + "]");
  }
  return it->second;
}

}  // namespace basin::testing

// Host half of bench/common.h: statistics, tables and JSON lines.
#include "bench/common.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/device.h"
#include "core/error.h"

namespace basin::bench {

bool cuda_device_present() { return cuda_is_available(); }
bool cuda_device_emulated() { return cuda_is_emulated(); }

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const std::size_t begin = line.find_first_not_of(" \t", colon + 1);
    return begin == std::string::npos ? "unknown CPU" : line.substr(begin);
  }
  return "unknown CPU";
}

Stats summarize(std::vector<double> samples_ms) {
  BASIN_CHECK(!samples_ms.empty(), "summarize: no samples");
  std::sort(samples_ms.begin(), samples_ms.end());
  const std::size_t n = samples_ms.size();
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  const auto rank = [&](double q) {
    const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
    return samples_ms[std::min(n - 1, k == 0 ? 0 : k - 1)];
  };
  Stats s;
  s.repeats = static_cast<int>(n);
  s.min_ms = samples_ms.front();
  s.max_ms = samples_ms.back();
  s.p10_ms = rank(0.10);
  s.p90_ms = rank(0.90);
  // The median of an even count is the mean of the middle two.
  s.median_ms = n % 2 == 1 ? samples_ms[n / 2] : 0.5 * (samples_ms[n / 2 - 1] + samples_ms[n / 2]);
  return s;
}

std::vector<std::string> split_list(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "-";
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

std::string grouped(std::int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

// ---------------------------------------------------------------- Table

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> cells) {
  BASIN_CHECK(cells.size() == headers_.size(), "Table: a row has ", cells.size(), " cells but the table has ",
              headers_.size(), " columns");
  rows_.push_back(std::move(cells));
  notes_.push_back(false);
}

void Table::add_note(std::string text) {
  rows_.push_back({std::move(text)});
  notes_.push_back(true);
}

void Table::print(std::ostream& out, const std::string& conclusion) const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) width[c] = headers_[c].size();
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    if (notes_[r]) continue;
    for (std::size_t c = 0; c < headers_.size(); ++c) width[c] = std::max(width[c], rows_[r][c].size());
  }
  std::size_t total = 0;
  for (std::size_t w : width) total += w + 2;

  // The first column (a name) reads best left-aligned, numbers right-aligned.
  const auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c == 0) {
        out << std::left << std::setw(static_cast<int>(width[c])) << cells[c];
      } else {
        out << "  " << std::right << std::setw(static_cast<int>(width[c])) << cells[c];
      }
    }
    out << "\n";
  };
  line(headers_);
  out << std::string(total, '-') << "\n";
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    if (notes_[r]) {
      out << "  " << rows_[r][0] << "\n";
    } else {
      line(rows_[r]);
    }
  }
  out << std::string(total, '-') << "\n" << conclusion << "\n" << std::flush;
}

// ---------------------------------------------------------------- JSON

namespace {

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
          out += buffer;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

}  // namespace

Record& Record::set(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, quoted(value));
  return *this;
}

Record& Record::set(const std::string& key, double value) {
  if (!std::isfinite(value)) {
    fields_.emplace_back(key, "null");
    return *this;
  }
  // The shortest text that reads back as the same double.
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  BASIN_CHECK(error == std::errc(), "Record: cannot format ", value);
  fields_.emplace_back(key, std::string(buffer, end));
  return *this;
}

Record& Record::set(const std::string& key, std::int64_t value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}

Record& Record::set(const std::string& key, bool value) {
  fields_.emplace_back(key, value ? "true" : "false");
  return *this;
}

std::string Record::str() const {
  std::string out = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (i > 0) out += ", ";
    out += quoted(fields_[i].first) + ": " + fields_[i].second;
  }
  return out + "}";
}

JsonLines::JsonLines(const std::string& path) : path_(path) {
  if (path.empty()) return;
  out_ = std::make_unique<std::ofstream>(path, std::ios::app);
  BASIN_CHECK(out_->good(), "--json: cannot open ", path, " for appending");
}

void JsonLines::write(const Record& record) {
  if (!out_) return;
  *out_ << record.str() << "\n";
  out_->flush();
  BASIN_CHECK(out_->good(), "--json: writing ", path_, " failed");
}

}  // namespace basin::bench

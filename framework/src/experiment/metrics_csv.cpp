// Writing metrics.csv: every number in its shortest form that reads back to the same
// double, so Python sees exactly what was computed; "nan" for values that do not apply.
#include "ncflab/experiment/metrics_csv.h"

#include <fmt/format.h>

#include <cmath>
#include <sstream>

#include "ncflab/core/errors.h"

namespace ncflab {
namespace {

constexpr const char* kFixedColumns = "member,step,time";

// The step column (second) of a data line, or −1.
int64_t step_of(const std::string& line) {
  const auto first = line.find(',');
  if (first == std::string::npos) return -1;
  try {
    return std::stoll(line.substr(first + 1));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

MetricsCsv::MetricsCsv(std::filesystem::path path, int64_t resume_step)
    : path_(std::move(path)), resume_step_(resume_step) {}

void MetricsCsv::begin(const std::vector<std::string>& names) {
  names_ = names;
  std::string header = kFixedColumns;
  for (const auto& name : names) header += "," + name;
  std::string kept;
  if (resume_step_ >= 0 && std::filesystem::exists(path_)) {
    std::istringstream old(read_whole_file(path_));
    std::string line;
    std::getline(old, line);
    if (line != header) {
      throw InputError({path_.string(), 1}, "metrics.csv", "the columns this config writes",
                       "other columns (was the config changed?)");
    }
    // A line cut by a crash has no newline after it: getline still returns it, so rows
    // are kept only when the file went on past them.
    while (std::getline(old, line)) {
      const int64_t step = step_of(line);
      if (step >= 0 && step < resume_step_ && !old.eof()) kept += line + "\n";
    }
  }
  file_ = std::make_unique<OutputFile>(path_, OutputFile::Mode::truncate);
  file_->write(header + "\n" + kept);
  file_->flush();
}

void MetricsCsv::row(int64_t member, int64_t step, double time, const std::vector<double>& values) {
  std::string line = fmt::format("{},{},{}", member, step, time);
  for (double value : values) {
    line += std::isnan(value) ? std::string(",nan") : fmt::format(",{}", value);
  }
  line += '\n';
  file_->write(line);
  if (member == 0) kept_.push_back({step, time, values});
}

void MetricsCsv::flush() {
  if (file_) file_->flush();
}

void MetricsCsv::close() {
  if (file_) file_->close();
  file_.reset();
}

}  // namespace ncflab

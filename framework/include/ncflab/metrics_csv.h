// metrics.csv of a run (SPEC §5): one row per logged step and member, written as the
// run goes (flushed at each logged step), with the last row of each member kept for
// the summary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "ncflab/trainer.h"

namespace ncflab {

class MetricsCsv final : public MetricsSink {
 public:
  /// Opens `path`. With `resume_step` ≥ 0 the file is kept up to (not including) rows of
  /// that step, which the resumed run writes again; otherwise it starts empty.
  MetricsCsv(std::filesystem::path path, int64_t members, int64_t resume_step = -1);

  void begin(const std::vector<std::string>& names) override;
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override;
  void flush() override;

  /// The last row written for member s: column name → value (empty if none yet).
  const std::map<std::string, double>& last_row(int64_t s) const { return last_[static_cast<size_t>(s)]; }
  /// Rows of member 0 kept for the console report: (step, time, values).
  struct KeptRow {
    int64_t step;
    double time;
    std::vector<double> values;
  };
  const std::vector<KeptRow>& first_member_rows() const { return kept_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::filesystem::path path_;
  std::ofstream file_;
  int64_t resume_step_;
  std::vector<std::string> names_;
  std::vector<std::map<std::string, double>> last_;
  std::vector<KeptRow> kept_;
};

}  // namespace ncflab

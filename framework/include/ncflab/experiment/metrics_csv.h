// metrics.csv of a run (SPEC §5): one row per logged step and member, written as the
// run goes (flushed at each logged step), with member 0's rows kept for the console.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ncflab/core/files.h"
#include "ncflab/train/metrics_sink.h"

namespace ncflab {

class MetricsCsv final : public MetricsSink {
 public:
  /// Opens `path`. With `resume_step` ≥ 0 the file is kept up to (not including) rows of
  /// that step, which the resumed run writes again; otherwise it starts empty.
  MetricsCsv(std::filesystem::path path, int64_t resume_step = -1);

  void begin(const std::vector<std::string>& names) override;
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override;
  void flush() override;
  /// Flushes, syncs to disk and closes: a run reports success only after this returned.
  void close();

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
  std::unique_ptr<OutputFile> file_;
  int64_t resume_step_;
  std::vector<std::string> names_;
  std::vector<KeptRow> kept_;
};

}  // namespace ncflab

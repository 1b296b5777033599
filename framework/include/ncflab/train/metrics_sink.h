// Where the trainer's metrics rows go: a file (the run's metrics.csv), a test's memory,
// or several runs' files when a batch of runs trains as one ensemble.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ncflab {

/// Receives the metrics: first the column names (once), then rows.
class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  /// Column names after the fixed "member,step,time" columns.
  virtual void begin(const std::vector<std::string>& names) = 0;
  /// Values (one per name) of member `member` at step k, time t.
  virtual void row(int64_t member, int64_t step, double time,
                   const std::vector<double>& values) = 0;
  /// Called after each logged step and at the end: push rows to storage.
  virtual void flush() = 0;
};

}  // namespace ncflab

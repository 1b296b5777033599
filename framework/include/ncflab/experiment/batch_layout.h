// Several runs trained as one ensemble (a δ sweep): which members of the batch belong to
// which run, and the metrics sink that writes each run's own metrics.csv.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/experiment/metrics_csv.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/train/metrics_sink.h"

namespace ncflab {

/// Whether runs with these configs can train as one ensemble: they differ at most in
/// init.scale, and in seed when the data come from a CSV file (synthetic data depend on
/// the seed). Member j of a run with seed s starts from w0 of seed s + j either way.
bool batchable(const Config& a, const Config& b);

/// The config with what a batch may vary (init.scale; seed for CSV data) set aside, as
/// text: runs are batchable exactly when their keys are equal, so a sweep groups its
/// points in one pass.
std::string batch_key(const Config& config);

/// Run r of a batch owns members [first[r], first[r] + count[r]); member j of run r has
/// δ_r and seed_r + j, exactly as if the run were alone.
struct BatchLayout {
  explicit BatchLayout(const std::vector<Config>& configs);

  std::vector<int64_t> first;
  std::vector<int64_t> count;
  int64_t total = 0;
  /// δ and seed of every member of the batch.
  EnsembleInit members;

  /// Run r's part of per-layer tensors [S, …] → [count[r], …] (views).
  std::vector<torch::Tensor> slice(const std::vector<torch::Tensor>& layers, size_t run) const;
  /// The run a batch member belongs to.
  size_t run_of(int64_t member) const;
};

/// Splits the batch's metrics rows into each run's metrics.csv, members renumbered.
class BatchMetrics final : public MetricsSink {
 public:
  BatchMetrics(std::vector<std::shared_ptr<MetricsCsv>> runs, BatchLayout layout);
  void begin(const std::vector<std::string>& names) override;
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override;
  void flush() override;

 private:
  std::vector<std::shared_ptr<MetricsCsv>> runs_;
  BatchLayout layout_;
};

}  // namespace ncflab

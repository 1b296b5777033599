// Member bookkeeping of a batch of runs, and splitting its metrics rows per run.
#include "ncflab/experiment/batch_layout.h"

namespace ncflab {

std::string batch_key(const Config& config) {
  Config key = config;
  key.init.scale = 1.0;
  if (config.data.source == DataSource::csv) key.seed = 0;
  return config_to_yaml(key);
}

bool batchable(const Config& a, const Config& b) { return batch_key(a) == batch_key(b); }

BatchLayout::BatchLayout(const std::vector<Config>& configs) {
  for (const auto& config : configs) {
    first.push_back(total);
    count.push_back(config.ensemble.seeds);
    total += config.ensemble.seeds;
    for (int64_t j = 0; j < config.ensemble.seeds; ++j) {
      members.deltas.push_back(config.init.scale);
      members.seeds.push_back(static_cast<uint64_t>(config.seed + j));
    }
  }
}

std::vector<torch::Tensor> BatchLayout::slice(const std::vector<torch::Tensor>& layers,
                                              size_t run) const {
  std::vector<torch::Tensor> part;
  for (const auto& w : layers) part.push_back(w.narrow(0, first[run], count[run]));
  return part;
}

size_t BatchLayout::run_of(int64_t member) const {
  size_t run = 0;
  while (member >= first[run] + count[run]) ++run;
  return run;
}

BatchMetrics::BatchMetrics(std::vector<std::shared_ptr<MetricsCsv>> runs, BatchLayout layout)
    : runs_(std::move(runs)), layout_(std::move(layout)) {}

void BatchMetrics::begin(const std::vector<std::string>& names) {
  for (auto& run : runs_) run->begin(names);
}

void BatchMetrics::row(int64_t member, int64_t step, double time,
                       const std::vector<double>& values) {
  const size_t run = layout_.run_of(member);
  runs_[run]->row(member - layout_.first[run], step, time, values);
}

void BatchMetrics::flush() {
  for (auto& run : runs_) run->flush();
}

}  // namespace ncflab

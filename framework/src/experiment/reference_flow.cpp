// One flow integration per distinct w0, with the sample times of every member that
// shares it, then split back per member.
#include "ncflab/experiment/reference_flow.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ncflab/ncf/time_scale.h"
#include "ncflab/train/trainer.h"

namespace ncflab {
namespace {

// Flow samples are kept for at most this many logged steps per member, and at most
// kMaxFlowSampleValues doubles in all (memory S·T·P): past them cos_to_flow_now is NaN.
constexpr int64_t kMaxFlowSamples = 4096;
constexpr int64_t kMaxFlowSampleValues = int64_t{1} << 25;  // 256 MiB

}  // namespace

std::vector<std::vector<double>> sampled_row_times(const Config& config,
                                                   const std::vector<double>& deltas,
                                                   int64_t total_degree, int64_t parameters) {
  const auto& train = config.train;
  const bool flows = train.integrator() == Integrator::gradient_flow;
  const auto members = static_cast<int64_t>(deltas.size());
  const int64_t affordable = std::max<int64_t>(1, kMaxFlowSampleValues / (members * parameters));
  const int64_t scheduled =
      flows ? train.max_steps() + 1 : train.max_steps() / train.log_every() + 1;
  const int64_t rows = std::min({kMaxFlowSamples, affordable, scheduled});
  std::vector<std::vector<double>> times;
  for (double delta : deltas) {
    std::vector<double> member;
    for (int64_t j = 0; j < rows; ++j) {
      // The trainer's own row times, so the two compare equal.
      const double t = flows ? flow_row_time(train, j, delta, total_degree)
                             : static_cast<double>(j * train.log_every()) * train.step_size();
      if (!member.empty() && !(t > member.back())) break;  // max_time reached
      member.push_back(t);
    }
    times.push_back(std::move(member));
  }
  return times;
}

namespace {

// Which distinct w0 each member starts from: `source[s]` indexes `distinct`, which holds
// one member per distinct w0.
struct SharedStarts {
  std::vector<int64_t> distinct;
  std::vector<int64_t> source;
};

SharedStarts shared_starts(const torch::Tensor& w0) {
  SharedStarts shared;
  for (int64_t s = 0; s < w0.size(0); ++s) {
    size_t d = 0;
    while (d < shared.distinct.size() && !torch::equal(w0[s], w0[shared.distinct[d]])) ++d;
    if (d == shared.distinct.size()) shared.distinct.push_back(s);
    shared.source.push_back(static_cast<int64_t>(d));
  }
  return shared;
}

}  // namespace

double resolve_log_interval(const Config& config, const Ncf& ncf, const torch::Tensor& w0) {
  const auto& train = config.train;
  if (train.log_interval() > 0) return train.log_interval();
  const double fallback = static_cast<double>(train.log_every()) * train.step_size();
  if (ncf.total_degree() <= 2) return fallback;
  // T* to a per cent is plenty for a row spacing: a loose tolerance, no samples.
  const auto shared = shared_starts(w0);
  const auto starts = w0.index_select(0, torch::tensor(shared.distinct, torch::kLong));
  const auto options = FlowOptions(config.flow).rtol(1e-6).direction_tol(1e-4).sample_times({});
  double earliest = std::numeric_limits<double>::infinity();
  for (const auto& member : integrate_ncf_flow(ncf, starts, options).members) {
    if (std::isfinite(member.blowup_time)) earliest = std::min(earliest, member.blowup_time);
  }
  if (!std::isfinite(earliest) || !(earliest > 0)) return fallback;
  const double target = earliest / 100;
  const double decade = std::pow(10.0, std::floor(std::log10(target)));
  for (const double mantissa : {5.0, 2.0, 1.0}) {
    if (mantissa * decade <= target) return mantissa * decade;
  }
  return decade;
}

FlowResult integrate_reference_flow(const Config& config, const Ncf& ncf, const torch::Tensor& w0,
                                    const std::vector<double>& deltas, std::ostream& err) {
  // u(τ) is wanted at τ = δ^(L−2)·t of each sampled row (SPEC §1: w(t) ≈ δ·u(δ^(L−2)·t)).
  auto times = sampled_row_times(config, deltas, ncf.total_degree(), ncf.parameters());
  for (size_t s = 0; s < times.size(); ++s) {
    for (double& t : times[s]) t = rescaled_time(t, deltas[s], ncf.total_degree());
  }
  const int64_t members = w0.size(0);
  const auto shared = shared_starts(w0);
  const auto source_of = [&](int64_t s) {
    return static_cast<size_t>(shared.source[static_cast<size_t>(s)]);
  };
  std::vector<std::vector<double>> merged(shared.distinct.size());
  for (int64_t s = 0; s < members; ++s) {
    auto& all = merged[source_of(s)];
    all.insert(all.end(), times[static_cast<size_t>(s)].begin(),
               times[static_cast<size_t>(s)].end());
  }
  for (auto& all : merged) {
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
  }
  const auto options = FlowOptions(config.flow).sample_times(merged);
  const auto starts = w0.index_select(0, torch::tensor(shared.distinct, torch::kLong));
  const auto flow =
      config.hooks.progress == Switch::off
          ? integrate_ncf_flow(ncf, starts, options)
          : integrate_ncf_flow(ncf, starts, options,
                               flow_progress_printer(err, config.hooks.progress_seconds));
  FlowResult result;
  result.total_degree = flow.total_degree;
  result.direction = flow.direction.index_select(
      0, torch::tensor(shared.source, torch::kLong).to(flow.direction.device()));
  for (int64_t s = 0; s < members; ++s) {
    const auto d = source_of(s);
    FlowMember member = flow.members[d];
    std::vector<int64_t> rows;
    for (double t : times[static_cast<size_t>(s)]) {
      rows.push_back(std::lower_bound(merged[d].begin(), merged[d].end(), t) - merged[d].begin());
    }
    member.samples = flow.members[d].samples.index_select(0, torch::tensor(rows, torch::kLong));
    result.members.push_back(std::move(member));
  }
  return result;
}

}  // namespace ncflab

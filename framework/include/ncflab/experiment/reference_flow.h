// The NCF flow a run compares its training with (SPEC §1, §5): integrated from each
// member's own w0, sampled at the matching times δ^(L−2)·t of the metrics rows.
#pragma once

#include <torch/torch.h>

#include <iosfwd>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/ncf/flow.h"

namespace ncflab {

/// The training times t of the scheduled metrics rows the flow is sampled at, per member:
/// gradient descent's k·η for k = 0, log_every, …; gradient flow's j·log_interval/δ^(L−2)
/// for j = 0, 1, … (capped at max_time). Capped in number and in memory (S·rows·P values).
std::vector<std::vector<double>> sampled_row_times(const Config& config,
                                                   const std::vector<double>& deltas,
                                                   int64_t total_degree, int64_t parameters);

/// The gradient flow's row spacing in rescaled time δ^(L−2)·t: train.log_interval when set
/// (> 0); else (0, "auto") a hundredth of the earliest blow-up time T* of the members' NCF
/// flows, rounded down to 1, 2 or 5 × 10^k, from a quick low-accuracy integration; where no
/// flow blows up (L = 2, a collapse) gradient descent's row spacing log_every·step.
double resolve_log_interval(const Config& config, const Ncf& ncf, const torch::Tensor& w0);

/// The flow from each member's w0 (`w0` [S, P], unit rows), with samples u(δ_s^(L−2)·t)
/// at the times t of sampled_row_times (NaN past the flow's end). Members that share w0 (a δ sweep
/// over the same seeds) share one integration; sampling does not change the flow's steps, so each
/// member gets exactly the flow it would get alone. Progress goes to `err` unless hooks.progress is
/// off.
FlowResult integrate_reference_flow(const Config& config, const Ncf& ncf, const torch::Tensor& w0,
                                    const std::vector<double>& deltas, std::ostream& err);

}  // namespace ncflab

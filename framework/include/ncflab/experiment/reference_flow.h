// The NCF flow a run compares its training with (SPEC §1, §5): integrated from each
// member's own w0, sampled at the matching times δ^(L−2)·t of the logged steps.
#pragma once

#include <torch/torch.h>

#include <iosfwd>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/ncf/flow.h"

namespace ncflab {

/// The flow from each member's w0 (`w0` [S, P], unit rows), with samples u(δ_s^(L−2)·k·η)
/// at the logged steps k = 0, log_every, … (capped in number and memory; NaN past the
/// flow's end). Members that share w0 (a δ sweep over the same seeds) share one
/// integration; sampling does not change the flow's steps, so each member gets exactly
/// the flow it would get alone. Progress goes to `err` unless hooks.progress is off.
FlowResult integrate_reference_flow(const Config& config, const Ncf& ncf, const torch::Tensor& w0,
                                    const std::vector<double>& deltas, std::ostream& err);

}  // namespace ncflab

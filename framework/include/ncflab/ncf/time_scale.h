// The clocks of training and of the NCF flow (SPEC §1: w(t) ≈ δ·u(δ^(L−2)·t)): how a
// training time t and a flow time τ correspond for initial scale δ and total degree L.
#pragma once

#include <cstdint>

namespace ncflab {

/// δ^(L−2)·t: the time on the NCF flow's clock that training time t corresponds to
/// (t itself for L = 2, where there is no rescaling).
double rescaled_time(double time, double delta, int64_t total_degree);

/// The inverse: the training time t = τ/δ^(L−2) that flow time τ corresponds to (e.g.
/// the escape the theory predicts, T*/δ^(L−2)).
double training_time(double flow_time, double delta, int64_t total_degree);

}  // namespace ncflab

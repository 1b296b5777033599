// The per-member bookkeeping of the NCF-flow integrator (internal): the scalars kept on
// the host, when a member stops, where it crossed max_norm, and its final report.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "ncflab/ncf/flow.h"

namespace ncflab::flow_detail {

// Per-member scalars, kept on the host: one small transfer per step decides everything.
struct MemberState {
  double time = 0;
  double h = 0;      // next step size
  double norm = 0;   // ‖u‖
  double value = 0;  // N(u), not N(û)
  double speed = 0;  // ‖∇N(u)‖ = ‖du/dt‖
  double initial_norm = 0;
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t last_recorded = -1;  // accepted count of the last trajectory row
  bool active = true;
  size_t next_sample = 0;  // index of the next sample time not yet reached
  // State before the last accepted step, for locating the max_norm crossing inside it.
  double previous_time = 0;
  double previous_norm = 0;
  double previous_value = 0;
};

/// The sample times a member has passed now, [next_sample, end): filled by interpolation
/// inside the step that passed them, so sampling never changes the steps the flow takes
/// (and a member's flow is the same whatever times it is asked for).
size_t samples_reached(const MemberState& m, const FlowOptions& options, size_t member);

/// Row indices on `device`.
torch::Tensor index_tensor(const std::vector<int64_t>& ids, const torch::Device& device);

/// Why a member stops now, if it does. Blow-up wins over everything else; an accepted step
/// that lands past max_norm is the blow-up, whatever the step count.
std::optional<FlowStatus> stop_reason(const MemberState& m, const FlowOptions& options);

/// The t in [t0, t1] at which ‖u‖ = target, from the cubic Hermite interpolant of ‖u(t)‖
/// through both ends with slopes d‖u‖/dt = L·N(u)/‖u‖ (4th-order accurate in the step).
double crossing_time(double total_degree, const MemberState& m, double target);

/// Appends a trajectory row for each member in `ids` (one batched evaluation of û).
void record(const Ncf& ncf, const torch::Tensor& u, const std::vector<int64_t>& ids,
            std::vector<MemberState>& states, FlowResult& result);

/// Where a blown-up member crossed max_norm: the reference direction. The last accepted
/// step overshoots max_norm by a step-size dependent amount while û still turns (slowly),
/// so the crossing point, not the step's end, makes the direction independent of the path
/// of step sizes (and comparable with any other integrator to its tolerance).
struct Crossing {
  double time = 0;
  torch::Tensor u;  // [P]
};

/// Fills the final fields of a member whose last trajectory row is its final state; a
/// blown-up member reports N, the residual and T* at its max_norm crossing.
void finish(const Ncf& ncf, const MemberState& m, FlowStatus status, double total_degree,
            const std::optional<Crossing>& crossing, FlowMember& out);

}  // namespace ncflab::flow_detail

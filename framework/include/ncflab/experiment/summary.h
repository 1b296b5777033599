// summary.json of a run (SPEC §5): per member its status, escape, the NCF flow's
// prediction and the final metrics; the whole run's status, degrees and speed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ncflab/ncf/flow.h"
#include "ncflab/train/hooks/kkt_comparison_hook.h"
#include "ncflab/train/hooks/layer_statistics_hook.h"
#include "ncflab/train/trainer.h"

namespace ncflab {

/// JSON has no NaN: a non-finite number (an undefined time, say) becomes null.
nlohmann::json number_or_null(double value);

/// SPEC §5's "homogeneity": {"total": L, "layers": [q_1, …]} for degrees q_l, W1 first
/// (L = Σ q_l).
nlohmann::json homogeneity_json(const std::vector<int64_t>& degrees);

/// How a member's NCF flow ended, as flow.json and summary.json report it: outcome
/// (blew_up | collapsed | stalled | max_time | max_steps), blowup_time, escape_time, ncf,
/// residual; a stall adds norm (‖u*‖) and gradient_ratio.
nlohmann::json flow_member_json(const FlowMember& member);

/// "interrupted" or "diverged" if any member is, "escaped" if all are, else "max_steps".
std::string overall_status(const std::vector<MemberStatus>& statuses);

/// What a member's summary is made of. Pointers are null when that part was not run
/// (no flow, hook not installed).
struct MemberRecord {
  const TrainState* state = nullptr;                     ///< the final training state of the batch
  int64_t member = 0;                                    ///< s in the batch
  const FlowMember* flow = nullptr;                      ///< the member's NCF flow
  const KktComparison* comparison = nullptr;             ///< its last logged KKT comparison
  const std::vector<LayerStatistics>* layers = nullptr;  ///< its last per-layer statistics
};

/// One member's summary: status, delta, steps, time, ncf_flow, predicted_escape_time,
/// escape, final, layers (`degrees` q_l, W1 first, and their sum L).
nlohmann::json member_summary(const MemberRecord& record, const std::vector<int64_t>& degrees);

/// The run's summary.json: member 0's fields at the top level (SPEC §5), "members" when
/// there are several, the run's status, homogeneity and the trainer's speed.
nlohmann::json run_summary(const std::vector<nlohmann::json>& members,
                           const std::vector<MemberStatus>& statuses,
                           const std::vector<int64_t>& degrees, const TrainResult& result,
                           const std::string& device);

}  // namespace ncflab

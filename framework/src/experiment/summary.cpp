// Building summary.json from the trainer's final state, the reference flow and the
// last values the KKT-comparison and layer-statistics hooks logged.
#include "ncflab/experiment/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ncflab/ncf/time_scale.h"
#include "ncflab/train/engine.h"

namespace ncflab {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

json escape_json(const EscapeRecord& escape, double blowup) {
  if (escape.step < 0) return nullptr;
  return {{"step", escape.step},
          {"time", escape.time},
          {"rescaled_time", escape.rescaled_time},
          {"norm", escape.norm},
          {"rescaled_time_over_blowup_time", number_or_null(escape.rescaled_time / blowup)}};
}

json final_json(const TrainState& state, size_t i, const KktComparison& comparison) {
  return {{"loss", state.loss[i]},
          {"norm", state.norm[i]},
          {"norm_over_delta", state.norm[i] / state.deltas[i]},
          {"gradient_norm", state.gradient_norm[i]},
          {"ncf", number_or_null(comparison.ncf)},
          {"kkt_residual", number_or_null(comparison.kkt_residual)},
          {"kink_residual", number_or_null(comparison.kink_residual)},
          {"cos_to_flow", number_or_null(comparison.cos_to_flow)},
          {"cos_to_kkt", number_or_null(comparison.cos_to_kkt)}};
}

json layers_json(const std::vector<LayerStatistics>* layers, const std::vector<int64_t>& degrees,
                 int64_t total_degree) {
  json list = json::array();
  for (size_t l = 0; l < degrees.size(); ++l) {
    const bool logged = layers != nullptr && l < layers->size();
    const LayerStatistics none{kNaN, kNaN, kNaN};
    const LayerStatistics& layer = logged ? (*layers)[l] : none;
    list.push_back(
        {{"norm", number_or_null(layer.norm)},
         {"share", number_or_null(layer.share)},
         {"kkt_share", static_cast<double>(degrees[l]) / static_cast<double>(total_degree)},
         {"sv_ratio", number_or_null(layer.sv_ratio)}});
  }
  return list;
}

}  // namespace

int64_t total_degree_of(const std::vector<int64_t>& degrees) {
  return std::accumulate(degrees.begin(), degrees.end(), int64_t{0});
}

json homogeneity_json(const std::vector<int64_t>& degrees) {
  return {{"total", total_degree_of(degrees)}, {"layers", degrees}};
}

json number_or_null(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

json flow_member_json(const FlowMember& member) {
  json report = {{"outcome", flow_status_name(member.status)},
                 {"blowup_time", number_or_null(member.blowup_time)},
                 {"escape_time", number_or_null(member.escape_time)},
                 {"ncf", member.ncf},
                 {"residual", member.residual},
                 {"accepted_steps", member.accepted},
                 {"rejected_steps", member.rejected}};
  // A stall is a place, not a direction: say where (‖u*‖) and how still (‖∇N(û)‖ there
  // over its largest value along the flow).
  if (member.status == FlowStatus::stalled) {
    report["norm"] = number_or_null(member.norm);
    report["gradient_ratio"] = member.gradient_ratio;
  }
  if (member.kinks) {
    const auto& k = *member.kinks;
    report["kinks"] = {{"crossings", k.crossings},
                       {"entries", k.entries},
                       {"exits", k.exits},
                       {"sliding", k.sliding},
                       {"unlocated", k.unlocated}};
  }
  return report;
}

std::string overall_status(const std::vector<MemberStatus>& statuses) {
  const auto any = [&](MemberStatus s) {
    return std::count(statuses.begin(), statuses.end(), s) > 0;
  };
  if (any(MemberStatus::interrupted)) return "interrupted";
  if (any(MemberStatus::diverged)) return "diverged";
  if (std::all_of(statuses.begin(), statuses.end(),
                  [](MemberStatus s) { return s == MemberStatus::escaped; })) {
    return "escaped";
  }
  return "max_steps";
}

json member_summary(const MemberRecord& record, const std::vector<int64_t>& degrees) {
  const TrainState& state = *record.state;
  const auto i = static_cast<size_t>(record.member);
  const int64_t total_degree = total_degree_of(degrees);
  json summary;
  summary["status"] = member_status_name(state.status[i]);
  summary["delta"] = state.deltas[i];
  summary["steps"] = state.steps_done[i];
  summary["gradient_evaluations"] = state.evaluations[i];
  summary["time"] = state.times[i];
  if (state.flow) {
    summary["rejected_steps"] = state.flow->rejected[i];
    const double stiff = state.flow->stiff_time[i];
    summary["stiff_from_time"] = std::isnan(stiff) ? json(nullptr) : json(stiff);
  }
  double blowup = kNaN;
  if (record.flow != nullptr) {
    blowup = record.flow->blowup_time;
    summary["ncf_flow"] = flow_member_json(*record.flow);
    if (std::isfinite(blowup) && total_degree > 2) {
      // The escape the theory predicts: t ≈ T*/δ^(L−2) (an upper bound: r_esc < ∞).
      summary["predicted_escape_time"] = training_time(blowup, state.deltas[i], total_degree);
    }
  } else {
    summary["ncf_flow"] = nullptr;
  }
  summary["escape"] = escape_json(state.escape[i], blowup);
  static const KktComparison not_compared;
  summary["final"] = final_json(state, i, record.comparison ? *record.comparison : not_compared);
  summary["layers"] = layers_json(record.layers, degrees, total_degree);
  return summary;
}

json run_summary(const std::vector<json>& members, const std::vector<MemberStatus>& statuses,
                 const std::vector<int64_t>& degrees, const TrainResult& result,
                 const std::string& device) {
  json summary = members.front();
  summary["status"] = overall_status(statuses);
  summary["homogeneity"] = homogeneity_json(degrees);
  if (members.size() > 1) summary["members"] = members;
  summary["integrator"] = integrator_name(result.integrator);
  summary["engine"] = engine_name(result.engine);
  summary["device"] = device;
  summary["wall_seconds"] = result.wall_seconds;
  summary["steps_per_second"] = result.steps_per_second();
  summary["iterations"] = result.iterations;
  return summary;
}

}  // namespace ncflab

// The console view of a run: a researcher sees the problem, the prediction, a sample of
// the trajectory and the verdict without opening a file.
#include "ncflab/experiment/console_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>

#include "ncflab/ncf/time_scale.h"
#include "ncflab/train/engine.h"

namespace ncflab {
namespace {

using nlohmann::json;

// Up to 12 rows of member 0's trajectory, spread evenly over the logged steps.
void print_trajectory(const MetricsCsv& metrics, std::ostream& out) {
  const auto& names = metrics.names();
  const auto column = [&](const std::string& name) {
    const auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? -1 : static_cast<int64_t>(it - names.begin());
  };
  const auto& rows = metrics.first_member_rows();
  if (!rows.empty()) {
    // cos(flow now): to the flow's direction at the matching time δ^(L−2)·t (logged steps
    // only); cos(flow T*): to its direction at blow-up.
    out << fmt::format("{:>10}  {:>12}  {:>12}  {:>12}  {:>12}  {:>10}  {:>9}  {:>13}  {:>13}\n",
                       "step", "t", "delta^(L-2)t", "||w||/delta", "loss", "N(w/||w||)", "residual",
                       "cos(flow now)", "cos(flow T*)");
    const size_t shown = std::min<size_t>(rows.size(), 12);
    for (size_t k = 0; k < shown; ++k) {
      const size_t r = shown == 1 ? 0 : k * (rows.size() - 1) / (shown - 1);
      const auto& row = rows[r];
      const auto value = [&](const std::string& name) {
        const int64_t c = column(name);
        return c < 0 ? std::nan("") : row.values[static_cast<size_t>(c)];
      };
      out << fmt::format(
          "{:>10}  {:>12.6g}  {:>12.6g}  {:>12.6g}  {:>12.6g}  {:>10.6g}  {:>9.2e}  {:>13.6f}  "
          "{:>13.6f}\n",
          row.step, row.time, value("rescaled_time"), value("norm_over_delta"), value("loss"),
          value("ncf"), value("kkt_residual"), value("cos_to_flow_now"), value("cos_to_flow"));
    }
  }
}

std::string verdict(const json& member, const std::string& label) {
  std::string text = fmt::format("{}{}", label, member["status"].get<std::string>());
  if (!member["escape"].is_null()) {
    const auto& escape = member["escape"];
    text += fmt::format(" at step {} (t = {:.6g}); delta^(L-2)*t_esc = {:.6g}",
                        escape["step"].get<int64_t>(), escape["time"].get<double>(),
                        escape["rescaled_time"].get<double>());
    if (!member["ncf_flow"].is_null() && !member["ncf_flow"]["blowup_time"].is_null()) {
      text += fmt::format(" vs flow T* = {:.6g} (ratio {:.6f})",
                          member["ncf_flow"]["blowup_time"].get<double>(),
                          escape["rescaled_time_over_blowup_time"].get<double>());
    }
    if (!member["final"]["cos_to_flow"].is_null()) {
      text += fmt::format("; cos(w/||w||, flow direction) = {:.6f}",
                          member["final"]["cos_to_flow"].get<double>());
    }
    if (member.contains("stiff_from_time") && !member["stiff_from_time"].is_null()) {
      text += fmt::format(
          "; stiff from t = {:.6g} (stability, not accuracy, limits the flow's steps there)",
          member["stiff_from_time"].get<double>());
    }
  } else if (member.contains("predicted_escape_time")) {
    text +=
        fmt::format(" after t = {:.6g}; the flow predicts escape near t = T*/delta^(L-2) = {:.6g}",
                    member["time"].get<double>(), member["predicted_escape_time"].get<double>());
  }
  return text;
}

}  // namespace

void print_run_header(const Problem& problem, const std::filesystem::path& directory,
                      std::ostream& out) {
  out << fmt::format("run: {} into {}\n", problem.config.name, directory.string())
      << describe_problem(problem) << std::flush;
}

void print_flow_prediction(const FlowMember& flow, double delta, int64_t total_degree,
                           double step_size, std::ostream& out) {
  if (std::isfinite(flow.blowup_time)) {
    const double predicted = training_time(flow.blowup_time, delta, total_degree);
    out << fmt::format(
        "  flow     NCF flow from w0 blows up at T* = {:.6g}: escape expected near t = "
        "T*/delta^(L-2) = {:.6g}{}\n",
        flow.blowup_time, predicted,
        step_size > 0 ? fmt::format(" (step {:.0f})", predicted / step_size) : std::string());
  } else if (flow.status == FlowStatus::stalled) {
    out << fmt::format(
        "  flow     NCF flow from w0 stalls at a critical point of N (N = 0, ||u|| = {:.6g}) "
        "at t = {:.6g}: no escape predicted\n",
        flow.norm, flow.time);
  } else if (flow.status == FlowStatus::collapsed) {
    out << fmt::format(
        "  flow     NCF flow from w0 collapses (N* = {:.6g} < 0, u -> 0): no escape predicted\n",
        flow.ncf);
  } else {
    out << fmt::format("  flow     NCF flow from w0: {} at t = {:.6g}\n",
                       flow_status_name(flow.status), flow.time);
  }
}

void print_run_report(const json& summary, const MetricsCsv& metrics, int64_t total_degree,
                      std::ostream& out) {
  print_trajectory(metrics, out);
  if (summary.contains("members")) {
    for (size_t s = 0; s < summary["members"].size(); ++s) {
      out << verdict(summary["members"][s], fmt::format("member {}: ", s)) << '\n';
    }
  } else {
    out << verdict(summary, "run: ") << '\n';
  }
  if (total_degree == 2)
    out << "run: L = 2: no finite blow-up; escape time grows like log(1/delta)\n";
}

std::string describe_speed(const TrainResult& result) {
  const auto& state = result.state;
  if (result.integrator == Integrator::gradient_descent) {
    return fmt::format("{} engine, {:.0f} steps/s", engine_name(result.engine),
                       result.steps_per_second());
  }
  const auto sum = [](const std::vector<int64_t>& counts) {
    return std::accumulate(counts.begin(), counts.end(), int64_t{0});
  };
  return fmt::format("gradient flow, {} engine, {} steps ({} rejected), {} gradient evaluations",
                     engine_name(result.engine), sum(state.steps_done), sum(state.flow->rejected),
                     sum(state.evaluations));
}

void print_run_footer(const std::string& status, const TrainResult& result,
                      const std::filesystem::path& directory, bool interrupted, std::ostream& out) {
  out << fmt::format("run: {} ({}; {:.2f} s); wrote {}\n", status, describe_speed(result),
                     result.wall_seconds, directory.string());
  if (interrupted) {
    out << fmt::format("run: interrupted; continue with: ncflab run --resume {}\n",
                       directory.string());
  }
}

}  // namespace ncflab

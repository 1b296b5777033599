// What a run prints for a person at the terminal: the problem, the flow's prediction,
// a few rows of the trajectory, the verdict on escape and where the files went.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "ncflab/experiment/metrics_csv.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/train/trainer.h"

namespace ncflab {

/// "run: NAME into DIR" and describe_problem's lines.
void print_run_header(const Problem& problem, const std::filesystem::path& directory,
                      std::ostream& out);

/// The escape the NCF flow from w0 predicts (T*/δ^(L−2), and its step when `step_size` >
/// 0), or how it ended.
void print_flow_prediction(const FlowMember& flow, double delta, int64_t total_degree,
                           double step_size, std::ostream& out);

/// Up to 12 rows of member 0's trajectory from `metrics` and each member's verdict from
/// `summary` (escape time against T*, cosine to the flow's direction).
void print_run_report(const nlohmann::json& summary, const MetricsCsv& metrics,
                      int64_t total_degree, std::ostream& out);

/// How fast training went: "fused engine, 51234 steps/s" for gradient descent; for the
/// gradient flow its accepted steps and gradient evaluations (over all members).
std::string describe_speed(const TrainResult& result);

/// The closing line of a run (status, engine, speed, directory) and, when interrupted,
/// how to continue.
void print_run_footer(const std::string& status, const TrainResult& result,
                      const std::filesystem::path& directory, bool interrupted, std::ostream& out);

}  // namespace ncflab

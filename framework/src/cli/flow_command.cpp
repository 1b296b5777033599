// `ncflab flow`: config → data, NCF and the members' initial directions w0 → NCF
// gradient flow → flow.json, flow_trajectory.csv, flow_direction.pt and a table.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/files.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/summary.h"
#include "ncflab/ncf/flow.h"

namespace ncflab {
namespace {

nlohmann::json member_json(const FlowMember& member) {
  auto record = flow_member_json(member);
  record.update({{"norm", number_or_null(member.norm)},
                 {"log_norm", member.log_norm},
                 {"time", member.time}});
  return record;
}

}  // namespace

std::filesystem::path flow_command(const CommandArguments& arguments, std::ostream& out,
                                   std::ostream& err) {
  const auto started = std::chrono::steady_clock::now();
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const Problem problem = build_problem(config);
  const OutputDirectory output =
      prepare_output_directory(config, OutputKind::flow, arguments.out, arguments.overwrite, err);
  const auto& directory = output.path;
  const Ncf ncf(problem.model->options, problem.data.inputs, problem.ncf_labels);
  // The flow starts at the unit direction w0 of each member: training starts at δ·w0.
  const auto& w0 = problem.model->initial_directions();
  const FlowOptions& options = config.flow;
  out << fmt::format(
      "flow: {} member{} on {} (L = {}, P = {}), from w0 with ||w0|| = 1 until the direction "
      "converges (residual {:g})\n",
      w0.size(0), w0.size(0) == 1 ? "" : "s", describe_model(ncf.options()), ncf.total_degree(),
      ncf.parameters(), options.direction_tol());
  const auto result = integrate_ncf_flow(ncf, w0, options, flow_progress_printer(err, 2.0));

  out << fmt::format("{:>6}  {:>9}  {:>14}  {:>14}  {:>12}  {:>12}  {:>9}  {:>8}\n", "member",
                     "outcome", "T*", "escape time", "final N(u)", "final ||u||", "residual",
                     "steps");
  nlohmann::json members = nlohmann::json::array();
  std::string trajectory = "member,time,norm,ncf,residual\n";
  for (size_t s = 0; s < result.members.size(); ++s) {
    const auto& member = result.members[s];
    members.push_back(member_json(member));
    out << fmt::format(
        "{:>6}  {:>9}  {:>14.10g}  {:>14.10g}  {:>12.8g}  {:>12.6g}  {:>9.2e}  {:>8}\n", s,
        flow_status_name(member.status), member.blowup_time, member.escape_time, member.ncf,
        member.norm, member.residual, member.accepted);
    for (const auto& row : member.trajectory) {
      trajectory += fmt::format("{},{:.17g},{:.17g},{:.17g},{:.17g}\n", s, row.time, row.norm,
                                row.ncf, row.residual);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // SPEC §5: the top-level keys describe member 0 (the whole run when S = 1).
  nlohmann::json report = member_json(result.members.front());
  report["homogeneity"] = homogeneity_json(ncf.degrees());
  report["max_norm"] = options.max_norm();
  report["direction_tol"] = options.direction_tol();
  report["members"] = members;
  report["wall_seconds"] = seconds;
  write_file_atomically(directory / "flow.json", report.dump(2) + "\n");
  write_file_atomically(directory / "flow_trajectory.csv", trajectory);
  save_tensor_dict(directory / "flow_direction.pt", named_layers(ncf.layers(result.direction)));
  out << fmt::format("flow: wrote {} ({:.1f} s)\n", (directory / "flow.json").string(), seconds);
  return directory;
}

}  // namespace ncflab

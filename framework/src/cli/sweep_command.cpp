// `ncflab sweep CONFIG key=v1,v2 ...`: the plan's batches run one after another, each
// point into its own run directory, and sweep.csv rewritten after every batch.
#include <fmt/format.h>

#include <ostream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/files.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/sweep_plan.h"

namespace ncflab {
namespace {

// The runs of one batch, each in a fresh directory under `root`.
std::vector<RunSpec> prepare_batch(const SweepPlan& plan, const std::vector<size_t>& batch,
                                   const std::filesystem::path& root, std::ostream& out) {
  std::vector<RunSpec> runs;
  std::string labels;
  for (size_t i : batch) {
    const auto directory = root / point_name(i, plan.points[i]);
    const auto prepared =
        prepare_output_directory(plan.configs[i], "", directory.string(), true, kSummaryFile);
    std::filesystem::remove(prepared / kCheckpointFile);
    runs.push_back({plan.configs[i], prepared, plan.overrides[i]});
    std::string label;
    for (const auto& [key, value] : plan.points[i]) label += fmt::format(" {}={}", key, value);
    labels += fmt::format("\n  run {}:{}", i + 1, label);
  }
  out << fmt::format("sweep: {} run{} together:{}\n", batch.size(), batch.size() == 1 ? "" : "s",
                     labels)
      << std::flush;
  return runs;
}

}  // namespace

SweepOutcome sweep_command(const CommandArguments& arguments, bool sequential, std::ostream& out,
                           std::ostream& err) {
  const SweepPlan plan = plan_sweep(arguments.config_path, arguments.overrides, sequential);
  const auto root = prepare_output_directory(plan.configs.front(), "sweep", arguments.out,
                                             arguments.overwrite, "sweep.csv");
  out << fmt::format("sweep: {} runs into {} ({} batch{})\n", plan.points.size(), root.string(),
                     plan.batches.size(), plan.batches.size() == 1 ? "" : "es");
  const std::string header = sweep_csv_header(plan);
  std::vector<std::string> rows(plan.points.size());
  int signal = 0;
  for (const auto& batch : plan.batches) {
    const auto runs = prepare_batch(plan, batch, root, out);
    const auto outcomes = run_batch(runs, RunSettings{}, out, err);
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t i = batch[b];
      rows[i] = sweep_csv_row(i, runs[b].directory.filename().string(), plan.points[i],
                              outcomes[b].summary);
      if (outcomes[b].signal != 0) signal = outcomes[b].signal;
    }
    std::string csv = header;
    for (const auto& row : rows) csv += row;
    write_file_atomically(root / "sweep.csv", csv);
    if (signal != 0) {
      out << "sweep: interrupted; finished runs are in sweep.csv\n";
      break;
    }
  }
  out << fmt::format("sweep: wrote {}\n", (root / "sweep.csv").string());
  return {root, signal};
}

}  // namespace ncflab

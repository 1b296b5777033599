// A training run as a short story: build the problem (the weights are drawn there, once),
// write the inputs, integrate the reference flow, install the hooks, train, write the
// results. A batch of runs is the same story over one ensemble.
#include "ncflab/experiment/run.h"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <ostream>

#include "ncflab/core/directory_lock.h"
#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/signals.h"
#include "ncflab/experiment/batch_layout.h"
#include "ncflab/experiment/checkpoint.h"
#include "ncflab/experiment/console_report.h"
#include "ncflab/experiment/metrics_csv.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/experiment/reference_flow.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/run_hooks.h"
#include "ncflab/experiment/summary.h"
#include "ncflab/train/trainer.h"

namespace ncflab {
namespace {

using nlohmann::json;

std::vector<Config> configs_of(const std::vector<RunSpec>& runs) {
  std::vector<Config> configs;
  for (const auto& run : runs) configs.push_back(run.config);
  return configs;
}

// Data, and the whole batch's ensemble (member j of run r: δ_r, seed_r + j).
Problem build_batch_problem(const std::vector<RunSpec>& runs, const BatchLayout& layout) {
  Config config = runs.front().config;
  config.ensemble.seeds = layout.total;
  Problem problem = build_problem(config, layout.members);
  if (config.train.engine() == EngineKind::fused && !problem.device.is_cpu()) {
    throw InputError(config.location_of("train.engine"), "train.engine",
                     "auto, batched or autograd on a CUDA device (the fused engine is CPU only)",
                     "fused");
  }
  return problem;
}

// The metrics.csv of every run, behind one sink; a resumed run keeps its rows before `step`.
std::vector<std::shared_ptr<MetricsCsv>> open_metrics(const std::vector<RunSpec>& runs,
                                                      int64_t resume_step) {
  std::vector<std::shared_ptr<MetricsCsv>> metrics;
  for (const auto& run : runs) {
    metrics.push_back(std::make_shared<MetricsCsv>(run.directory / kMetricsFile, resume_step));
  }
  return metrics;
}

void resume_from_checkpoint(Trainer& trainer, FeedForwardImpl& model, const Checkpoint& checkpoint,
                            const std::filesystem::path& directory, std::ostream& out) {
  torch::NoGradGuard no_grad;
  for (size_t l = 0; l < checkpoint.weights.size(); ++l)
    model.weights()[l].copy_(checkpoint.weights[l]);
  trainer.resume_from(checkpoint.state);
  out << fmt::format("run: resuming {} at step {}\n", directory.string(), checkpoint.state.step);
}

TrainResult train_until_done_or_interrupted(Trainer& trainer) {
  InterruptHandler interrupts;
  return trainer.run();
}

// Run r's summary.json, final weights and snapshots (not when interrupted: the
// checkpoint holds the state then; train_runs removes it once every run is written).
json finish_run(size_t r, const BatchLayout& layout, const Problem& problem, const Config& config,
                const FlowResult* flow, const RunHooks& hooks, const TrainResult& result,
                const std::filesystem::path& directory) {
  const auto& model = *problem.model;
  std::vector<json> members;
  std::vector<MemberStatus> statuses;
  for (int64_t j = 0; j < layout.count[r]; ++j) {
    const int64_t s = layout.first[r] + j;
    MemberRecord record;
    record.state = &result.state;
    record.member = s;
    record.flow = flow ? &flow->members[static_cast<size_t>(s)] : nullptr;
    record.comparison = hooks.comparison ? &hooks.comparison->last(s) : nullptr;
    record.layers = hooks.layers ? &hooks.layers->last(s) : nullptr;
    members.push_back(member_summary(record, model.degrees()));
    statuses.push_back(result.state.status[static_cast<size_t>(s)]);
  }
  json summary = run_summary(members, statuses, model.degrees(), result, problem.device.str());
  if (layout.count.size() > 1) summary["batched_runs"] = layout.count.size();
  if (config.train.integrator() == Integrator::gradient_flow) {
    summary["log_interval"] = config.train.log_interval();  // as resolved (auto: from T*)
  }
  const int signal = result.interrupted ? interrupt_signal() : 0;
  if (signal != 0) {
    summary["signal"] = signal;
  } else {
    save_tensor_dict(directory / "weights_final.pt",
                     named_layers(layout.slice(model.weights(), r)));
    if (hooks.snapshots) {
      save_tensor_dict(directory / "weights_trajectory.pt",
                       hooks.snapshots->trajectory(layout.first[r], layout.count[r]));
    }
  }
  write_file_atomically(directory / kSummaryFile, summary.dump(2) + "\n");
  return summary;
}

// `started` turns true once a resumed run's checkpoint has been read (a fresh run starts
// so): a failure after that point is the run's failure.
std::vector<RunOutcome> train_runs(const std::vector<RunSpec>& runs, const RunSettings& settings,
                                   bool& started, std::ostream& out, std::ostream& err) {
  std::vector<DirectoryLock> locks;  // one writer per run directory, for the whole run
  for (const auto& run : runs) locks.push_back(DirectoryLock::acquire(run.directory));
  const BatchLayout layout(configs_of(runs));
  const bool single = runs.size() == 1;
  Problem problem = build_batch_problem(runs, layout);
  auto& model = *problem.model;
  const std::filesystem::path checkpoint_path = !settings.checkpoint.empty() ? settings.checkpoint
                                                : single ? runs.front().directory / kCheckpointFile
                                                         : std::filesystem::path();
  std::optional<Checkpoint> checkpoint;
  std::vector<InputFingerprints> inputs;
  for (const auto& run : runs) inputs.push_back(fingerprint_inputs(run.directory, problem.data));
  if (settings.resume) {
    for (size_t r = 0; r < runs.size(); ++r) {
      check_inputs_unchanged(runs[r].directory, inputs[r], settings.force, err);
    }
    checkpoint = load_checkpoint(checkpoint_path, layout.total, model.layer_shapes());
    started = true;
  } else {
    for (size_t r = 0; r < runs.size(); ++r) {
      write_run_inputs(runs[r].directory, layout.slice(model.weights(), r), problem.data,
                       runs[r].overrides);
    }
  }
  if (single) print_run_header(problem, runs.front().directory, out);

  const auto ncf = std::make_shared<Ncf>(model.options, problem.data.inputs, problem.ncf_labels);
  const bool flows = problem.config.train.integrator() == Integrator::gradient_flow;
  Config config = problem.config;  // with the gradient flow's row spacing resolved
  if (flows) {
    config.train.log_interval(resolve_log_interval(config, *ncf, model.initial_directions()));
    if (single) {
      out << fmt::format(
          "  rows     every delta^(L-2)*t = {:g}{}\n", config.train.log_interval(),
          problem.config.train.log_interval() > 0 ? "" : " (train.log_interval auto)");
    }
  }
  std::optional<FlowResult> flow;  // the reference flow, unless flow.enabled is false
  if (config.flow.enabled) {
    flow = integrate_reference_flow(config, *ncf, model.initial_directions(), layout.members.deltas,
                                    err);
    if (single) {
      print_flow_prediction(flow->members.front(), layout.members.deltas.front(),
                            model.total_degree(), flows ? 0.0 : config.train.step_size(), out);
    }
  }

  Trainer trainer(problem.model, problem.data.inputs, problem.data.labels, config.loss,
                  layout.members.deltas, config.train);
  for (size_t r = 0; r < runs.size(); ++r) {
    write_run_meta(runs[r].directory, problem.device, problem.dtype,
                   resolve_engine_kind(config.train.engine(), problem.device), inputs[r]);
  }
  const FlowResult* reference = flow ? &*flow : nullptr;
  HookInputs hook_inputs;
  hook_inputs.config = &config;
  hook_inputs.model = &model;
  hook_inputs.ncf = ncf;
  hook_inputs.flow = reference;
  hook_inputs.deltas = layout.members.deltas;
  if (!checkpoint_path.empty()) hook_inputs.checkpoint = checkpoint_path;
  hook_inputs.terminal = settings.terminal;
  const RunHooks hooks = install_run_hooks(trainer, hook_inputs, out, err);
  const auto metrics = open_metrics(runs, checkpoint ? checkpoint->state.step : -1);
  trainer.set_metrics_sink(std::make_shared<BatchMetrics>(metrics, layout));
  if (checkpoint) {
    resume_from_checkpoint(trainer, model, *checkpoint,
                           single ? runs.front().directory : checkpoint_path, out);
  }

  const TrainResult result = train_until_done_or_interrupted(trainer);
  // On disk before any summary says the run ended: a run whose metrics could not be
  // written has failed, whatever its training did.
  for (const auto& run_metrics : metrics) run_metrics->close();

  std::vector<RunOutcome> outcomes;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto summary =
        finish_run(r, layout, problem, config, reference, hooks, result, runs[r].directory);
    const int signal = summary.value("signal", 0);
    const std::string status = summary["status"].get<std::string>();
    if (single) {
      print_run_report(summary, *metrics[r], model.total_degree(), out);
      print_run_footer(status, result, runs[r].directory, signal != 0, out);
    }
    outcomes.push_back({runs[r].directory, status, signal, summary});
  }
  // Every run's results are written: the ensemble's state is no longer needed.
  if (!result.interrupted && !checkpoint_path.empty()) std::filesystem::remove(checkpoint_path);
  if (!single) {
    out << fmt::format("run: {} runs as one ensemble of {} members ({}; {:.2f} s)\n", runs.size(),
                       layout.total, describe_speed(result), result.wall_seconds);
  }
  return outcomes;
}

// Never leave a directory that looks complete (or still running) after a failure.
void mark_failed(const std::vector<RunSpec>& runs, const std::string& error) {
  for (const auto& run : runs) {
    try {
      write_file_atomically(run.directory / kSummaryFile,
                            json{{"status", "failed"}, {"error", error}}.dump(2) + "\n");
    } catch (const std::exception&) {
    }
  }
}

}  // namespace

std::vector<RunOutcome> run_batch(const std::vector<RunSpec>& runs, const RunSettings& settings,
                                  std::ostream& out, std::ostream& err) {
  TORCH_CHECK(!runs.empty(), "run_batch – no runs given");
  for (const auto& run : runs) {
    TORCH_CHECK(batchable(runs.front().config, run.config),
                "run_batch – runs must differ only in init.scale (and seed for CSV data)");
  }
  bool started = !settings.resume;
  try {
    return train_runs(runs, settings, started, out, err);
  } catch (const Interrupted& e) {
    // Stopped before training began (during the reference flow): no checkpoint yet, so
    // `run --resume` starts these runs over.
    std::vector<RunOutcome> outcomes;
    for (const auto& run : runs) {
      const json summary{{"status", "interrupted"}, {"signal", e.signal()}, {"error", e.what()}};
      if (started) write_file_atomically(run.directory / kSummaryFile, summary.dump(2) + "\n");
      outcomes.push_back({run.directory, "interrupted", e.signal(), summary});
    }
    err << fmt::format("ncflab: {}; `ncflab run --resume DIR` starts {} over\n", e.what(),
                       runs.size() == 1 ? "the run" : "these runs");
    return outcomes;
  } catch (const std::exception& e) {
    // A resume refused before it began (a bad checkpoint, changed inputs) leaves the
    // interrupted run's summary as it was: it can still be resumed.
    if (started) mark_failed(runs, e.what());
    throw;
  }
}

RunOutcome run_experiment(const Config& config, const std::filesystem::path& directory,
                          const RunSettings& settings, std::ostream& out, std::ostream& err) {
  return run_batch({RunSpec{config, directory, settings.overrides}}, settings, out, err).front();
}

}  // namespace ncflab

// A training run end to end: problem, NCF flow from the run's own w0, trainer with the
// built-in hooks, and every file of the run directory (SPEC §5).
#include "ncflab/run.h"

#include <fmt/format.h>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ostream>

#include "ncflab/builtin_hooks.h"
#include "ncflab/checkpoint.h"
#include "ncflab/errors.h"
#include "ncflab/flow.h"
#include "ncflab/kkt.h"
#include "ncflab/log.h"
#include "ncflab/metrics_csv.h"
#include "ncflab/output.h"
#include "ncflab/problem.h"
#include "ncflab/signals.h"
#include "ncflab/trainer.h"
#include "ncflab/version.h"

namespace ncflab {
namespace {

using nlohmann::json;

// Flow samples are kept for at most this many logged steps per member, and at most
// kMaxFlowSampleValues doubles in all (memory S·T·P): past them cos_to_flow_now is NaN.
constexpr int64_t kMaxFlowSamples = 4096;
constexpr int64_t kMaxFlowSampleValues = int64_t{1} << 25;  // 256 MiB

double value_or_nan(const std::map<std::string, double>& row, const std::string& key) {
  const auto it = row.find(key);
  return it == row.end() ? std::nan("") : it->second;
}

std::string overall_status(const std::vector<MemberStatus>& statuses) {
  const auto any = [&](MemberStatus s) { return std::count(statuses.begin(), statuses.end(), s) > 0; };
  if (any(MemberStatus::interrupted)) return "interrupted";
  if (any(MemberStatus::diverged)) return "diverged";
  if (std::all_of(statuses.begin(), statuses.end(),
                  [](MemberStatus s) { return s == MemberStatus::escaped; })) {
    return "escaped";
  }
  return "max_steps";
}

void write_meta(const std::filesystem::path& directory, const Problem& problem, EngineKind engine) {
  const json meta = {{"ncflab", NCFLAB_VERSION},
                     {"git", NCFLAB_GIT_DESCRIBE},
                     {"libtorch", TORCH_VERSION},
                     {"device", problem.device.str()},
                     {"cuda_available", torch::cuda::is_available()},
                     {"threads", at::get_num_threads()},
                     {"engine", engine_name(engine)},
                     {"dtype", problem.dtype == torch::kFloat64 ? "float64" : "float32"}};
  write_file_atomically(directory / "meta.json", meta.dump(2) + "\n");
}

// u(τ) is wanted at τ = δ^(L−2)·k·η for the logged k = 0, log_every, … (SPEC §1: w(t) ≈
// δ·u(δ^(L−2)·t)).
std::vector<std::vector<double>> flow_sample_times(const Config& config,
                                                   const std::vector<double>& deltas,
                                                   int64_t total_degree, int64_t parameters) {
  const auto members = static_cast<int64_t>(deltas.size());
  const int64_t affordable = std::max<int64_t>(1, kMaxFlowSampleValues / (members * parameters));
  const int64_t rows = std::min({kMaxFlowSamples, affordable, config.train.max_steps / config.train.log_every + 1});
  std::vector<std::vector<double>> times;
  for (double delta : deltas) {
    std::vector<double> member;
    for (int64_t j = 0; j < rows; ++j) {
      const double t = static_cast<double>(j * config.train.log_every) * config.train.step;
      member.push_back(rescaled_time(t, delta, total_degree));
    }
    times.push_back(std::move(member));
  }
  return times;
}

// The NCF flow from each member's w0. Members that share w0 (a δ sweep over the same
// seeds) share one integration, asked for the union of their sample times; sampling does
// not change the flow's steps, so each member gets exactly the flow it would get alone.
FlowResult run_flow(const Config& config, const Ncf& ncf, const torch::Tensor& w0,
                    const std::vector<double>& deltas, std::ostream& err) {
  const auto times = flow_sample_times(config, deltas, ncf.total_degree(), ncf.parameters());
  const int64_t members = w0.size(0);
  std::vector<int64_t> distinct;          // a member holding each distinct w0
  std::vector<int64_t> source(static_cast<size_t>(members));  // member s's distinct w0
  for (int64_t s = 0; s < members; ++s) {
    size_t d = 0;
    while (d < distinct.size() && !torch::equal(w0[s], w0[distinct[d]])) ++d;
    if (d == distinct.size()) distinct.push_back(s);
    source[static_cast<size_t>(s)] = static_cast<int64_t>(d);
  }
  std::vector<std::vector<double>> merged(distinct.size());
  for (int64_t s = 0; s < members; ++s) {
    auto& all = merged[static_cast<size_t>(source[static_cast<size_t>(s)])];
    all.insert(all.end(), times[static_cast<size_t>(s)].begin(), times[static_cast<size_t>(s)].end());
  }
  for (auto& all : merged) {
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
  }
  const auto options = flow_options(config).sample_times(merged);
  const auto starts = w0.index_select(0, torch::tensor(distinct, torch::kLong));
  const auto shared = config.hooks.progress == Switch::off
                          ? integrate_ncf_flow(ncf, starts, options)
                          : integrate_ncf_flow(ncf, starts, options,
                                               flow_progress_printer(err, config.hooks.progress_seconds));
  FlowResult result;
  result.total_degree = shared.total_degree;
  result.direction = shared.direction.index_select(0, torch::tensor(source, torch::kLong).to(shared.direction.device()));
  for (int64_t s = 0; s < members; ++s) {
    const auto d = static_cast<size_t>(source[static_cast<size_t>(s)]);
    FlowMember member = shared.members[d];
    std::vector<int64_t> rows;
    for (double t : times[static_cast<size_t>(s)]) {
      rows.push_back(std::lower_bound(merged[d].begin(), merged[d].end(), t) - merged[d].begin());
    }
    member.samples = shared.members[d].samples.index_select(0, torch::tensor(rows, torch::kLong));
    result.members.push_back(std::move(member));
  }
  return result;
}

// Member s of the batch, which is member `local` of its run's metrics file.
json member_summary(int64_t s, int64_t local, const TrainState& state, const MetricsCsv& metrics,
                    const FlowResult* flow, const std::vector<int64_t>& degrees, int64_t total_degree) {
  const auto i = static_cast<size_t>(s);
  const auto& row = metrics.last_row(local);
  json summary;
  summary["status"] = member_status_name(state.status[i]);
  summary["delta"] = state.deltas[i];
  summary["steps"] = state.steps_done[i];
  summary["time"] = static_cast<double>(state.steps_done[i]) * state.step_size;
  const auto& escape = state.escape[i];
  double blowup = std::nan("");
  if (flow != nullptr) {
    const auto& member = flow->members[i];
    blowup = member.blowup_time;
    summary["ncf_flow"] = flow_member_json(member);
    if (std::isfinite(blowup) && total_degree > 2) {
      // The escape the theory predicts: t ≈ T*/δ^(L−2) (an upper bound: r_esc < ∞).
      summary["predicted_escape_time"] = training_time(blowup, state.deltas[i], total_degree);
    }
  } else {
    summary["ncf_flow"] = nullptr;
  }
  if (escape.step >= 0) {
    summary["escape"] = {{"step", escape.step},
                         {"time", escape.time},
                         {"rescaled_time", escape.rescaled_time},
                         {"norm", escape.norm},
                         {"rescaled_time_over_blowup_time", number_or_null(escape.rescaled_time / blowup)}};
  } else {
    summary["escape"] = nullptr;
  }
  summary["final"] = {{"loss", state.loss[i]},
                      {"norm", state.norm[i]},
                      {"norm_over_delta", state.norm[i] / state.deltas[i]},
                      {"gradient_norm", state.gradient_norm[i]},
                      {"ncf", number_or_null(value_or_nan(row, "ncf"))},
                      {"kkt_residual", number_or_null(value_or_nan(row, "kkt_residual"))},
                      {"kink_residual", number_or_null(value_or_nan(row, "kink_residual"))},
                      {"cos_to_flow", number_or_null(value_or_nan(row, "cos_to_flow"))},
                      {"cos_to_kkt", number_or_null(value_or_nan(row, "cos_to_kkt"))}};
  json layers = json::array();
  for (size_t l = 0; l < degrees.size(); ++l) {
    const std::string prefix = fmt::format("layer{}_", l + 1);
    layers.push_back({{"norm", number_or_null(value_or_nan(row, prefix + "norm"))},
                      {"share", number_or_null(value_or_nan(row, prefix + "share"))},
                      {"kkt_share", static_cast<double>(degrees[l]) / static_cast<double>(total_degree)},
                      {"sv_ratio", number_or_null(value_or_nan(row, prefix + "sv_ratio"))}});
  }
  summary["layers"] = layers;
  return summary;
}

// A few rows of member 0's trajectory and the verdict on escape, for the terminal.
void print_report(const json& summary, const MetricsCsv& metrics, int64_t total_degree,
                  std::ostream& out) {
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
      out << fmt::format("{:>10}  {:>12.6g}  {:>12.6g}  {:>12.6g}  {:>12.6g}  {:>10.6g}  {:>9.2e}  {:>13.6f}  {:>13.6f}\n",
                         row.step, row.time, value("rescaled_time"), value("norm_over_delta"),
                         value("loss"), value("ncf"), value("kkt_residual"), value("cos_to_flow_now"),
                         value("cos_to_flow"));
    }
  }
  const auto describe = [&](const json& member, const std::string& label) {
    std::string text = fmt::format("{}{}", label, member["status"].get<std::string>());
    if (!member["escape"].is_null()) {
      const auto& escape = member["escape"];
      text += fmt::format(" at step {} (t = {:.6g}); delta^(L-2)*t_esc = {:.6g}", escape["step"].get<int64_t>(),
                          escape["time"].get<double>(), escape["rescaled_time"].get<double>());
      if (!member["ncf_flow"].is_null() && !member["ncf_flow"]["blowup_time"].is_null()) {
        text += fmt::format(" vs flow T* = {:.6g} (ratio {:.4f})",
                            member["ncf_flow"]["blowup_time"].get<double>(),
                            escape["rescaled_time_over_blowup_time"].get<double>());
      }
      if (!member["final"]["cos_to_flow"].is_null()) {
        text += fmt::format("; cos(w/||w||, flow direction) = {:.6f}",
                            member["final"]["cos_to_flow"].get<double>());
      }
    } else if (member.contains("predicted_escape_time")) {
      text += fmt::format(" after t = {:.6g}; the flow predicts escape near t = T*/delta^(L-2) = {:.6g}",
                          member["time"].get<double>(), member["predicted_escape_time"].get<double>());
    }
    return text;
  };
  if (summary.contains("members")) {
    for (size_t s = 0; s < summary["members"].size(); ++s) {
      out << describe(summary["members"][s], fmt::format("member {}: ", s)) << '\n';
    }
  } else {
    out << describe(summary, "run: ") << '\n';
  }
  if (total_degree == 2) out << "run: L = 2: no finite blow-up; escape time grows like log(1/delta)\n";
}

// The members of each run of a batch: run g owns members [first[g], first[g] + count[g]).
struct Layout {
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  int64_t total = 0;
};

Layout layout_of(const std::vector<RunGroup>& groups) {
  Layout layout;
  for (const auto& group : groups) {
    layout.first.push_back(layout.total);
    layout.count.push_back(group.config.ensemble.seeds);
    layout.total += group.config.ensemble.seeds;
  }
  return layout;
}

std::vector<torch::Tensor> slice(const std::vector<torch::Tensor>& layers, int64_t first, int64_t count) {
  std::vector<torch::Tensor> part;
  for (const auto& w : layers) part.push_back(w.narrow(0, first, count));
  return part;
}

/// Splits metrics rows of the batch into each run's metrics.csv, members renumbered.
class GroupedMetrics final : public MetricsSink {
 public:
  GroupedMetrics(std::vector<std::shared_ptr<MetricsCsv>> parts, Layout layout)
      : parts_(std::move(parts)), layout_(std::move(layout)) {}
  void begin(const std::vector<std::string>& names) override {
    for (auto& part : parts_) part->begin(names);
  }
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override {
    size_t g = 0;
    while (member >= layout_.first[g] + layout_.count[g]) ++g;
    parts_[g]->row(member - layout_.first[g], step, time, values);
  }
  void flush() override {
    for (auto& part : parts_) part->flush();
  }

 private:
  std::vector<std::shared_ptr<MetricsCsv>> parts_;
  Layout layout_;
};

std::vector<RunOutcome> run_groups(const std::vector<RunGroup>& groups, const RunSettings& settings,
                                   std::ostream& out, std::ostream& err) {
  const Layout layout = layout_of(groups);
  Config batch = groups.front().config;
  batch.ensemble.seeds = layout.total;
  Problem problem = build_problem(batch);
  if (batch.train.engine == EngineKind::fused && !problem.device.is_cpu()) {
    throw InputError(batch.location_of("train.engine"), "train.engine",
                     "auto, batched or autograd on a CUDA device (the fused engine is CPU only)", "fused");
  }
  auto& model = *problem.model;
  const int64_t total_degree = model.total_degree();
  // Member j of run g: δ_g and seed_g + j, exactly as if the run were alone.
  std::vector<double> deltas;
  std::vector<uint64_t> seeds;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int64_t j = 0; j < layout.count[g]; ++j) {
      deltas.push_back(groups[g].config.init.scale);
      seeds.push_back(static_cast<uint64_t>(groups[g].config.seed + j));
    }
  }
  model.initialize(torch::tensor(deltas, torch::kFloat64), seeds);
  // The unit directions the weights were drawn from (δ·w0), exact: runs with the same seed
  // share w0 bit for bit whatever their δ.
  const auto w0 = unit_gaussian_directions(seeds, model.parameters_per_member());
  const bool single = groups.size() == 1;

  std::optional<Checkpoint> checkpoint;
  if (settings.resume) {
    checkpoint = load_checkpoint(groups.front().directory / kCheckpointFile, layout.total, model.layer_shapes());
  } else {
    for (size_t g = 0; g < groups.size(); ++g) {
      save_tensor_dict(groups[g].directory / "weights_init.pt", named_layers(slice(model.weights(), layout.first[g], layout.count[g])));
      // The data exactly as trained on (after normalisation): the PyTorch baseline and
      // report scripts read it, and synthetic data need not be regenerated elsewhere.
      save_tensor_dict(groups[g].directory / "data.pt",
                       {{"inputs", problem.data.inputs.to(torch::kCPU, torch::kFloat64)},
                        {"labels", problem.data.labels.to(torch::kCPU, torch::kFloat64)}});
      std::string overrides;
      for (const auto& o : groups[g].overrides) overrides += o + "\n";
      write_file_atomically(groups[g].directory / "overrides.txt", overrides);
    }
  }

  if (single) {
    out << fmt::format("run: {} into {}\n", batch.name, groups.front().directory.string())
        << describe_problem(problem) << std::flush;
  }
  const auto ncf = std::make_shared<Ncf>(model.options, problem.data.inputs, problem.ncf_labels);
  std::optional<FlowResult> flow;
  if (batch.flow.enabled) {
    flow = run_flow(batch, *ncf, w0, deltas, err);
    const auto& first = flow->members.front();
    if (single && std::isfinite(first.blowup_time)) {
      const double predicted = training_time(first.blowup_time, deltas.front(), total_degree);
      out << fmt::format("  flow     NCF flow from w0 blows up at T* = {:.6g}: escape expected near t = "
                         "T*/delta^(L-2) = {:.6g} (step {:.0f})\n",
                         first.blowup_time, predicted, predicted / batch.train.step);
    } else if (single) {
      out << fmt::format("  flow     NCF flow from w0: {} at t = {:.6g}\n", flow_status_name(first.status),
                         first.time);
    }
  }

  const auto options = TrainerOptions()
                           .step(batch.train.step)
                           .max_steps(batch.train.max_steps)
                           .escape_radius(batch.train.escape_radius)
                           .stop_at_escape(batch.train.stop_at_escape)
                           .log_every(batch.train.log_every)
                           .engine(batch.train.engine);
  Trainer trainer(problem.model, problem.data.inputs, problem.data.labels, batch.loss, deltas, options);
  for (const auto& group : groups) {
    write_meta(group.directory, problem, resolve_engine_kind(batch.train.engine, problem.device));
  }
  if (batch.hooks.layers) {
    trainer.add_hook(std::make_shared<LayerProjectionHook>(model.depth(), model.hidden_layers()));
  }
  if (batch.hooks.kkt) {
    KktComparisonHook::Reference reference;
    reference.log_every = batch.train.log_every;
    if (flow) {
      reference.flow_direction = flow->direction;
      for (const auto& member : flow->members) reference.flow_samples.push_back(member.samples);
    }
    if (batch.hooks.kkt_search) {
      const auto search = search_kkt_points(*ncf, kkt_search_options(batch));
      for (const auto& point : search.points) reference.kkt_points.push_back(point.direction);
      out << fmt::format("  kkt      {} non-negative KKT points from {} starts{}\n", search.points.size(),
                         search.restarts,
                         search.points.empty() ? "" : fmt::format(", best N = {:.6g}", search.points.front().ncf));
    }
    const bool kinks = batch.hooks.kink_residual == Switch::on ||
                       (batch.hooks.kink_residual == Switch::automatic && batch.model.activation.p == 1);
    trainer.add_hook(std::make_shared<KktComparisonHook>(ncf, reference, kinks ? batch.kkt.kink_tol : 0.0));
  }
  std::shared_ptr<WeightSnapshotHook> snapshots;
  if (batch.train.snapshot_every > 0) {
    snapshots = std::make_shared<WeightSnapshotHook>(batch.train.snapshot_every);
    trainer.add_hook(snapshots);
  }
  if (single) {
    const auto directory = groups.front().directory;
    trainer.add_hook(std::make_shared<CheckpointHook>(
        batch.train.checkpoint_every, [directory](const TrainState& state) {
          save_checkpoint(directory / kCheckpointFile, state, *state.weights);
        }));
  }
  if (batch.hooks.progress != Switch::off) {
    int64_t expected_escape = 0;
    if (flow && total_degree > 2) {
      for (size_t s = 0; s < flow->members.size(); ++s) {
        const double blowup = flow->members[s].blowup_time;
        if (!std::isfinite(blowup)) continue;
        const double steps = training_time(blowup, deltas[s], total_degree) / batch.train.step;
        expected_escape = std::max(expected_escape, static_cast<int64_t>(std::min(steps, 9e15)));
      }
    }
    trainer.add_hook(std::make_shared<ProgressHook>(
        err, settings.terminal, std::chrono::duration<double>(batch.hooks.progress_seconds),
        batch.train.max_steps, expected_escape));
  }
  std::vector<std::shared_ptr<MetricsCsv>> metrics;
  for (size_t g = 0; g < groups.size(); ++g) {
    metrics.push_back(std::make_shared<MetricsCsv>(groups[g].directory / "metrics.csv", layout.count[g],
                                                   checkpoint ? checkpoint->state.step : -1));
  }
  trainer.set_metrics_sink(std::make_shared<GroupedMetrics>(metrics, layout));
  if (checkpoint) {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < checkpoint->weights.size(); ++l) model.weights()[l].copy_(checkpoint->weights[l]);
    trainer.resume_from(checkpoint->state);
    out << fmt::format("run: resuming {} at step {}\n", groups.front().directory.string(), checkpoint->state.step);
  }

  TrainResult result;
  {
    InterruptHandler interrupts;
    result = trainer.run();
  }
  const auto& state = result.state;
  const int signal = result.interrupted ? interrupt_signal() : 0;
  const double steps_per_second =
      result.wall_seconds > 0 ? static_cast<double>(result.iterations) / result.wall_seconds : 0.0;

  std::vector<RunOutcome> outcomes;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& directory = groups[g].directory;
    std::vector<json> members;
    std::vector<MemberStatus> statuses;
    for (int64_t j = 0; j < layout.count[g]; ++j) {
      const int64_t s = layout.first[g] + j;
      members.push_back(member_summary(s, j, state, *metrics[g], flow ? &*flow : nullptr, model.degrees(),
                                       total_degree));
      statuses.push_back(state.status[static_cast<size_t>(s)]);
    }
    json summary = members.front();
    summary["status"] = overall_status(statuses);
    summary["homogeneity"] = {{"total", total_degree}, {"layers", model.degrees()}};
    if (layout.count[g] > 1) summary["members"] = members;
    summary["engine"] = engine_name(result.engine);
    summary["device"] = problem.device.str();
    summary["wall_seconds"] = result.wall_seconds;
    summary["steps_per_second"] = steps_per_second;
    summary["iterations"] = result.iterations;
    if (!single) summary["batched_runs"] = groups.size();
    if (signal != 0) {
      summary["signal"] = signal;
    } else {
      save_tensor_dict(directory / "weights_final.pt", named_layers(slice(model.weights(), layout.first[g], layout.count[g])));
      if (snapshots) {
        save_tensor_dict(directory / "weights_trajectory.pt", snapshots->trajectory(layout.first[g], layout.count[g]));
      }
      std::filesystem::remove(directory / kCheckpointFile);
    }
    write_file_atomically(directory / kSummaryFile, summary.dump(2) + "\n");
    if (single) {
      print_report(summary, *metrics[g], total_degree, out);
      out << fmt::format("run: {} ({} engine, {:.0f} steps/s, {:.2f} s); wrote {}\n",
                         summary["status"].get<std::string>(), engine_name(result.engine), steps_per_second,
                         result.wall_seconds, directory.string());
      if (signal != 0) {
        out << fmt::format("run: interrupted; continue with: ncflab run --resume {}\n", directory.string());
      }
    }
    outcomes.push_back({directory, summary["status"].get<std::string>(), signal, summary});
  }
  if (!single) {
    out << fmt::format("run: {} runs as one ensemble of {} members ({} engine, {:.0f} steps/s, {:.2f} s)\n",
                       groups.size(), layout.total, engine_name(result.engine), steps_per_second,
                       result.wall_seconds);
  }
  return outcomes;
}

// Never leave a directory that looks complete (or still running) after a failure. A bad
// checkpoint must not overwrite the summary of the run it belongs to, though.
void mark_failed(const std::vector<RunGroup>& groups, const RunSettings& settings, const std::string& error) {
  if (settings.resume) return;
  for (const auto& group : groups) {
    try {
      write_file_atomically(group.directory / kSummaryFile,
                            json{{"status", "failed"}, {"error", error}}.dump(2) + "\n");
    } catch (const std::exception&) {
    }
  }
}

}  // namespace

std::vector<RunOutcome> run_batch(const std::vector<RunGroup>& groups, const RunSettings& settings,
                                  std::ostream& out, std::ostream& err) {
  TORCH_CHECK(!groups.empty(), "run_batch – no runs given");
  for (const auto& group : groups) {
    TORCH_CHECK(batchable(groups.front().config, group.config),
                "run_batch – runs must differ only in init.scale (and seed for CSV data)");
  }
  TORCH_CHECK(!settings.resume || groups.size() == 1, "run_batch – only a single run can resume");
  try {
    return run_groups(groups, settings, out, err);
  } catch (const std::exception& e) {
    mark_failed(groups, settings, e.what());
    throw;
  }
}

RunOutcome run_experiment(const Config& config, const std::filesystem::path& directory,
                          const RunSettings& settings, std::ostream& out, std::ostream& err) {
  return run_batch({RunGroup{config, directory, settings.overrides}}, settings, out, err).front();
}

bool batchable(const Config& a, const Config& b) {
  Config left = a;
  Config right = b;
  right.init.scale = left.init.scale;
  if (a.data.source == DataSource::csv) right.seed = left.seed;
  return config_to_yaml(left) == config_to_yaml(right);
}

}  // namespace ncflab

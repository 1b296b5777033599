// The training loop: evaluate the weights of this iteration (gradient descent's w_k, or the
// flow's row), run the built-in checks (divergence, escape, budget, interrupt) and the
// hooks, log, then move the active members on.
#include "ncflab/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "device_steps.h"
#include "ncflab/core/signals.h"
#include "ncflab/ncf/time_scale.h"

namespace ncflab {

const char* integrator_name(Integrator integrator) {
  return integrator == Integrator::gradient_flow ? "flow" : "gd";
}

namespace {

bool any_running(const TrainState& state) {
  return std::any_of(state.active.begin(), state.active.end(), [](uint8_t a) { return a != 0; });
}

}  // namespace

double flow_row_time(const TrainerOptions& options, int64_t row, double delta,
                     int64_t total_degree) {
  const double t =
      training_time(static_cast<double>(row) * options.log_interval(), delta, total_degree);
  return options.max_time() > 0 ? std::min(t, options.max_time()) : t;
}

Trainer::Trainer(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss,
                 std::vector<double> deltas, TrainerOptions options)
    : model_(model),
      options_(options),
      total_degree_(model->total_degree()),
      deltas_(std::move(deltas)) {
  TORCH_CHECK(options_.step_size() > 0, "Trainer – step_size must be > 0 – got ",
              options_.step_size());
  TORCH_CHECK(options_.max_steps() >= 0, "Trainer – max_steps must be >= 0 – got ",
              options_.max_steps());
  TORCH_CHECK(options_.log_every() >= 1, "Trainer – log_every must be >= 1 – got ",
              options_.log_every());
  TORCH_CHECK(options_.max_time() >= 0, "Trainer – max_time must be >= 0 – got ",
              options_.max_time());
  TORCH_CHECK(!flows() || options_.log_interval() > 0, "Trainer – log_interval must be > 0 – got ",
              options_.log_interval());
  TORCH_CHECK(static_cast<int64_t>(deltas_.size()) == model->members(),
              "Trainer – need one delta per member (", model->members(), ") – got ",
              deltas_.size());
  engine_ =
      make_training_engine(options_.engine(), model_, std::move(inputs), std::move(labels), loss);
  if (flows()) {
    const bool kinks = model_->options.activation().p() == 1;
    flow_ = std::make_unique<GradientFlowStepper>(*engine_, model_->weights(),
                                                  GradientFlowOptions()
                                                      .rtol(options_.rtol())
                                                      .atol(options_.atol())
                                                      .escape_radius(options_.escape_radius())
                                                      .stop_at_escape(options_.stop_at_escape())
                                                      .max_steps(options_.max_steps())
                                                      .kink_step(kinks ? options_.kink_step() : 0.0)
                                                      .host_loops(options_.flow_host_loops()));
  }
  TORCH_CHECK(options_.sync_every() >= 0, "Trainer – sync_every must be >= 0 – got ",
              options_.sync_every());
  const bool on_cuda = model_->weights().front().is_cuda();
  // Chunks save a wait for the GPU per step on CUDA, and the fused engine's threads a
  // meeting per step (whose cost, at tens of microseconds a step, is a large share).
  const bool chunks_pay = on_cuda || engine_->runs_step_chunks();
  sync_every_ = options_.sync_every() > 0 ? options_.sync_every() : (chunks_pay ? 256 : 1);
  if (!flows() && sync_every_ > 1) {
    if (engine_->runs_step_chunks()) {
      engine_chunks_ = true;
    } else if (engine_->runs_on_device()) {
      device_steps_ = std::make_unique<DeviceSteps>(
          *engine_, model_->members(), options_.step_size(), options_.escape_radius(),
          options_.stop_at_escape(), options_.cuda_graph());
    }
  }
}

Trainer::~Trainer() = default;

void Trainer::add_hook(std::shared_ptr<TrainHook> hook) { hooks_.push_back(std::move(hook)); }

void Trainer::resume_from(const TrainState& saved) {
  TORCH_CHECK(saved.members() == model_->members(), "Trainer::resume_from – the saved state has ",
              saved.members(), " members, the model ", model_->members());
  TORCH_CHECK(!flows() || saved.flow,
              "Trainer::resume_from – a gradient-flow run needs the "
              "checkpoint's flow record");
  resume_ = saved;
}

void Trainer::check_divergence(TrainState& state) const {
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    if (!state.active[i]) continue;
    if (flows()) {
      // The flow's steps reject non-finite trials, so a failure is a step size that
      // underflowed; the row itself must be finite too.
      const bool finite = std::isfinite(state.loss[i]) && std::isfinite(state.norm[i]) &&
                          std::isfinite(state.gradient_norm[i]);
      if (!finite || flow_->stop(s) == FlowStop::failed) state.finish(s, MemberStatus::diverged);
      continue;
    }
    if (check_member(step_rule(), state.loss[i], state.norm[i], state.gradient_norm[i], true)
            .diverges) {
      state.finish(s, MemberStatus::diverged);
    }
  }
}

void Trainer::check_escape(TrainState& state) const {
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    if (!state.active[i] || state.escape[i].step >= 0) continue;
    const double time = state.times[i];
    if (flows() && flow_->crossing(s) && flow_->crossing(s)->time <= time) {
      // The crossing inside the step that made it (the row may lie later).
      const auto& crossing = *flow_->crossing(s);
      state.escape[i] = {crossing.step, crossing.time,
                         rescaled_time(crossing.time, state.deltas[i], total_degree_),
                         options_.escape_radius()};
    } else if (state.norm[i] >= options_.escape_radius()) {
      const int64_t step = flows() ? state.steps_done[i] : state.step;
      state.escape[i] = {step, time, rescaled_time(time, state.deltas[i], total_degree_),
                         state.norm[i]};
    } else {
      continue;
    }
    if (options_.stop_at_escape()) state.finish(s, MemberStatus::escaped);
  }
}

void Trainer::check_budget(TrainState& state) const {
  const bool timed = options_.max_time() > 0;
  if (!flows() && !timed && state.step < options_.max_steps()) return;  // the usual GD step
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    const bool out_of_steps = flows() ? state.steps_done[i] >= options_.max_steps() ||
                                            state.step >= options_.max_steps() ||
                                            flow_->stop(s) == FlowStop::budget
                                      : state.step >= options_.max_steps();
    if (out_of_steps || (timed && state.times[i] >= options_.max_time())) {
      state.finish(s, MemberStatus::max_steps);
    }
  }
}

void Trainer::log_metrics(const TrainState& state) {
  if (!sink_) return;
  // Every flow iteration is a row time; gradient descent logs every log_every steps.
  const bool scheduled = flows() || state.step % options_.log_every() == 0;
  std::vector<int64_t> rows;
  for (int64_t s = 0; s < state.members(); ++s) {
    if (state.active[static_cast<size_t>(s)] && scheduled) rows.push_back(s);
  }
  for (int64_t s : state.finished_now) rows.push_back(s);
  if (rows.empty()) return;
  std::sort(rows.begin(), rows.end());
  MetricColumns columns;
  std::vector<double> loss, norm, norm_over_delta, gradient_norm, rescaled;
  for (int64_t s : rows) {
    const auto i = static_cast<size_t>(s);
    loss.push_back(state.loss[i]);
    norm.push_back(state.norm[i]);
    norm_over_delta.push_back(state.norm[i] / state.deltas[i]);
    gradient_norm.push_back(state.gradient_norm[i]);
    rescaled.push_back(rescaled_time(state.times[i], state.deltas[i], total_degree_));
  }
  columns.emplace_back("rescaled_time", rescaled);
  columns.emplace_back("loss", loss);
  columns.emplace_back("norm", norm);
  columns.emplace_back("norm_over_delta", norm_over_delta);
  columns.emplace_back("gradient_norm", gradient_norm);
  for (const auto& hook : hooks_) hook->metrics(state, rows, columns);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<double> values;
    values.reserve(columns.size());
    for (const auto& column : columns) values.push_back(column.second[r]);
    sink_->row(rows[r], state.step, state.times[static_cast<size_t>(rows[r])], values);
  }
  sink_->flush();
}

TrainState Trainer::initial_state() const {
  const auto members = static_cast<size_t>(model_->members());
  TrainState state;
  if (resume_) {
    state = *resume_;
    if (state.times.empty()) {
      for (int64_t k : state.steps_done)
        state.times.push_back(static_cast<double>(k) * options_.step_size());
    }
    if (state.evaluations.empty()) state.evaluations = state.steps_done;
    for (size_t i = 0; i < members; ++i) {
      if (state.status[i] == MemberStatus::interrupted) {
        state.status[i] = MemberStatus::running;
        state.active[i] = 1;
      }
    }
  } else {
    state.active.assign(members, 1);
    state.status.assign(members, MemberStatus::running);
    state.escape.assign(members, EscapeRecord{});
    state.steps_done.assign(members, 0);
    state.evaluations.assign(members, 0);
    state.times.assign(members, 0.0);
    state.loss.assign(members, 0.0);
    state.norm.assign(members, 0.0);
    state.gradient_norm.assign(members, 0.0);
  }
  state.deltas = deltas_;
  state.weights = &model_->weights();
  state.gradients = &engine_->gradients();
  return state;
}

std::vector<int64_t> Trainer::finished_at_resume(const TrainState& state) const {
  // A resumed run repeats iteration k: members that finished exactly there get their last
  // metrics row again (the rows of iteration k and later were dropped with the resume).
  std::vector<int64_t> finished;
  if (!resume_) return finished;
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    if (state.active[i]) continue;
    const bool now = flows()
                         ? resume_->finished_now.end() != std::find(resume_->finished_now.begin(),
                                                                    resume_->finished_now.end(), s)
                         : state.steps_done[i] == state.step;
    if (now) finished.push_back(s);
  }
  return finished;
}

void Trainer::begin_metrics() {
  if (!sink_) return;
  std::vector<std::string> names = {"rescaled_time", "loss", "norm", "norm_over_delta",
                                    "gradient_norm"};
  for (const auto& hook : hooks_) {
    for (auto& name : hook->metric_names()) names.push_back(std::move(name));
  }
  sink_->begin(names);
}

void Trainer::evaluate(TrainState& state, StepStatistics& statistics, bool counted) {
  // The state's vectors go through the engine and back (moves, not copies): frozen
  // members keep their last values, which the engine does not touch.
  statistics.loss = std::move(state.loss);
  statistics.norm = std::move(state.norm);
  statistics.gradient_norm = std::move(state.gradient_norm);
  engine_->evaluate(state.active, statistics);
  if (counted) {
    for (size_t i = 0; i < state.active.size(); ++i) state.evaluations[i] += state.active[i];
  }
  state.loss = std::move(statistics.loss);
  state.norm = std::move(statistics.norm);
  state.gradient_norm = std::move(statistics.gradient_norm);
}

bool Trainer::check_stops(TrainState& state) const {
  check_divergence(state);
  check_escape(state);
  check_budget(state);
  if (interrupt_signal() == 0) return false;
  for (int64_t s = 0; s < state.members(); ++s) state.finish(s, MemberStatus::interrupted);
  return true;
}

int64_t Trainer::next_host_step(const TrainState& state) const {
  const int64_t k = state.step;
  int64_t next = std::min(k + sync_every_, options_.max_steps());
  if (sink_) next = std::min(next, (k / options_.log_every() + 1) * options_.log_every());
  for (const auto& hook : hooks_) next = std::min(next, hook->next_step(k));
  if (options_.max_time() > 0) {
    // check_budget's first k with k·η ≥ max_time, in its arithmetic.
    const double eta = options_.step_size();
    const double estimate = std::ceil(options_.max_time() / eta);
    if (estimate < static_cast<double>(next)) {
      auto first = static_cast<int64_t>(estimate);
      while (first > 0 && static_cast<double>(first - 1) * eta >= options_.max_time()) --first;
      while (static_cast<double>(first) * eta < options_.max_time()) ++first;
      if (first > k) next = std::min(next, first);
    }
  }
  return next;
}

int64_t Trainer::advance_in_chunk(TrainState& state, int64_t until) {
  const int64_t k = state.step;
  const double eta = options_.step_size();
  StepChunk chunk;
  if (device_steps_) {
    chunk = device_steps_->run(k, until, state.active, state.escape);
  } else {
    std::vector<uint8_t> escaped;
    for (const auto& escape : state.escape) escaped.push_back(escape.step >= 0);
    chunk = engine_->run_steps(step_rule(), k, until, state.active, escaped);
  }
  std::vector<int64_t> finished;
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    if (chunk.escape_step[i] >= 0) {
      const double time = static_cast<double>(chunk.escape_step[i]) * eta;
      state.escape[i] = {chunk.escape_step[i], time,
                         rescaled_time(time, state.deltas[i], total_degree_), chunk.escape_norm[i]};
    }
    if (state.active[i] && chunk.finish_step[i] >= 0) finished.push_back(s);
  }
  std::stable_sort(finished.begin(), finished.end(), [&](int64_t a, int64_t b) {
    return chunk.finish_step[static_cast<size_t>(a)] < chunk.finish_step[static_cast<size_t>(b)];
  });
  // Members that finished inside the chunk, step by step: their last rows as the host
  // loop writes them at that step (their weights have not moved since).
  for (size_t first = 0; first < finished.size();) {
    const int64_t step = chunk.finish_step[static_cast<size_t>(finished[first])];
    state.step = step;
    state.finished_now.clear();
    for (;
         first < finished.size() && chunk.finish_step[static_cast<size_t>(finished[first])] == step;
         ++first) {
      const auto i = static_cast<size_t>(finished[first]);
      state.times[i] = static_cast<double>(step) * eta;
      state.loss[i] = chunk.loss[i];
      state.norm[i] = chunk.norm[i];
      state.gradient_norm[i] = chunk.gradient_norm[i];
      state.steps_done[i] += step - k;
      state.evaluations[i] += step - k;
      state.finish(finished[first],
                   chunk.diverged[i] ? MemberStatus::diverged : MemberStatus::escaped);
    }
    log_metrics(state);
  }
  // When the last members finished inside the chunk, the run ends there, as on the host.
  if (!any_running(state)) {
    return state.step - k;
  }
  state.finished_now.clear();
  state.step = until;
  const double time = static_cast<double>(until) * eta;
  for (size_t i = 0; i < state.active.size(); ++i) {
    if (!state.active[i]) continue;
    state.steps_done[i] += until - k;
    state.evaluations[i] += until - k - 1;  // the evaluation at `until` is counted by the loop
    state.times[i] = time;
  }
  return until - k;
}

int64_t Trainer::advance(TrainState& state) {
  // A pending interrupt stops the run at the next step, as on the host.
  if (steps_in_chunks() && interrupt_signal() == 0) {
    const int64_t until = next_host_step(state);
    if (until > state.step + 1) return advance_in_chunk(state, until);
  }
  if (flows()) {
    ++state.step;
    std::vector<double> targets;
    for (double delta : state.deltas) {
      targets.push_back(flow_row_time(options_, state.step, delta, total_degree_));
    }
    return flow_->advance(state, targets);
  }
  engine_->update(options_.step_size(), state.active);
  for (size_t i = 0; i < state.active.size(); ++i) state.steps_done[i] += state.active[i];
  ++state.step;
  const double time = static_cast<double>(state.step) * options_.step_size();
  for (size_t i = 0; i < state.active.size(); ++i) {
    if (state.active[i]) state.times[i] = time;
  }
  return 1;
}

TrainResult Trainer::run() {
  TrainState state = initial_state();
  begin_metrics();
  TrainResult result;
  result.engine = engine_->kind();
  result.integrator = options_.integrator();
  const auto started = std::chrono::steady_clock::now();
  const auto resumed_finished = finished_at_resume(state);
  if (flow_) {
    if (resume_) {
      flow_->resume(*resume_->flow, state);
    } else {
      flow_->start(state.evaluations);
    }
    state.flow = flow_->record();
  }
  StepStatistics statistics;
  for (bool first = true;; first = false) {
    // A resumed run's first evaluation repeats the checkpoint's: it is not counted again.
    evaluate(state, statistics, !(first && resume_));
    state.finished_now.clear();
    if (first) {
      state.finished_now = resumed_finished;
      for (const auto& hook : hooks_) hook->on_start(state);
    }
    if (check_stops(state)) result.interrupted = true;
    log_metrics(state);
    for (const auto& hook : hooks_) hook->on_step(state);
    if (!any_running(state)) break;
    result.iterations += advance(state);
    // A chunk of steps may have finished every member between two host looks.
    if (!any_running(state)) break;
  }
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto& hook : hooks_) hook->on_end(state);
  if (sink_) sink_->flush();
  result.state = std::move(state);
  return result;
}

}  // namespace ncflab

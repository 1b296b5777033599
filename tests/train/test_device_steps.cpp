// Gradient descent in chunks of steps between two looks of the host loop (sync_every > 1:
// the checks on the device for the ATen engines — the CUDA path — and inside the fused
// engine's threads on CPU) takes exactly the host loop's steps: the same weights bit for
// bit, statuses, escape records, counters and metrics rows, also when members escape or
// diverge between looks, at max_time, and under an interrupt.
#include <ATen/Parallel.h>

#include <cstring>

#include "interrupt_at.h"
#include "ncflab/core/signals.h"
#include "ncflab/train/trainer.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::NetCase;

// Equal bit for bit (NaN included: a diverged member's loss).
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

struct BitExactRow {
  int64_t member;
  int64_t step;
  double time;
  std::vector<double> values;
  bool operator==(const BitExactRow& other) const {
    return member == other.member && step == other.step && time == other.time &&
           same_bits(values, other.values);
  }
};

class BitExactRowSink final : public MetricsSink {
 public:
  void begin(const std::vector<std::string>& names) override {}
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override {
    rows.push_back({member, step, time, values});
  }
  void flush() override {}
  std::vector<BitExactRow> rows;
};

struct Outcome {
  TrainResult result;
  torch::Tensor weights;
  std::vector<BitExactRow> rows;
};

// Six members of one net (L = 3) from δ = 0.02 … 2.5: they reach ‖w‖ = 3 at different steps,
// and trained on past it they diverge at η = 0.06, the largest within a few steps.
const std::vector<double> kDeltas = {0.02, 0.03, 0.05, 0.1, 1.5, 2.5};

struct TrainSetup {
  EngineKind engine = EngineKind::batched;
  torch::Device device = torch::kCPU;
  std::vector<double> deltas = kDeltas;
};

Outcome train(int64_t sync_every, TrainerOptions options, std::shared_ptr<TrainHook> hook = nullptr,
              const TrainSetup& setup = {}) {
  torch::manual_seed(4);
  const auto inputs = torch::randn({20, 4}, torch::kFloat64);
  const auto labels = torch::randn({20}, torch::kFloat64) * 2;
  const NetCase net{{6}, 0.2, 2};
  const auto members = static_cast<int64_t>(setup.deltas.size());
  auto model = FeedForward(testing::model_options(net, 4).members(members));
  model->initialize(torch::tensor(setup.deltas, torch::kFloat64), 7);
  model->to(setup.device);
  Trainer trainer(model, inputs.to(setup.device), labels.to(setup.device), LossKind::square,
                  setup.deltas, options.engine(setup.engine).sync_every(sync_every));
  auto sink = std::make_shared<BitExactRowSink>();
  trainer.set_metrics_sink(sink);
  if (hook) trainer.add_hook(hook);
  Outcome outcome;
  {
    InterruptHandler handler;
    outcome = {trainer.run(), model->flatten().cpu(), sink->rows};
  }
  clear_interrupt();  // an interrupt test's signal must not reach the next test in this process
  return outcome;
}

void expect_same(const Outcome& device, const Outcome& host) {
  EXPECT_TRUE(torch::equal(device.weights, host.weights));
  const auto& a = device.result.state;
  const auto& b = host.result.state;
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.steps_done, b.steps_done);
  EXPECT_EQ(a.evaluations, b.evaluations);
  EXPECT_EQ(a.times, b.times);
  EXPECT_TRUE(same_bits(a.loss, b.loss));
  EXPECT_TRUE(same_bits(a.norm, b.norm));
  EXPECT_TRUE(same_bits(a.gradient_norm, b.gradient_norm));
  for (size_t s = 0; s < a.escape.size(); ++s) {
    EXPECT_EQ(a.escape[s].step, b.escape[s].step) << "member " << s;
    EXPECT_EQ(a.escape[s].time, b.escape[s].time) << "member " << s;
    EXPECT_EQ(a.escape[s].rescaled_time, b.escape[s].rescaled_time) << "member " << s;
    EXPECT_TRUE(same_bits({a.escape[s].norm}, {b.escape[s].norm})) << "member " << s;
  }
  EXPECT_EQ(device.result.iterations, host.result.iterations);
  EXPECT_EQ(device.result.interrupted, host.result.interrupted);
  ASSERT_EQ(device.rows.size(), host.rows.size());
  for (size_t r = 0; r < host.rows.size(); ++r) {
    EXPECT_TRUE(device.rows[r] == host.rows[r])
        << "row " << r << ": member " << device.rows[r].member << " step " << device.rows[r].step
        << " vs member " << host.rows[r].member << " step " << host.rows[r].step;
  }
}

// Whether some member finished with `status` at a step between two host copies (not a
// multiple of sync_every or log_every): the case the device checks exist for.
bool finished_between_copies(const TrainState& state, MemberStatus status, int64_t sync_every,
                             int64_t log_every) {
  for (size_t s = 0; s < state.status.size(); ++s) {
    const int64_t k = state.steps_done[s];
    if (state.status[s] == status && k % sync_every != 0 && k % log_every != 0) return true;
  }
  return false;
}

// η = 0.06, 400 steps, log_every 10, r_esc = 3: members escape and (training on) diverge.
TrainerOptions across_looks_options(bool stop_at_escape) {
  return TrainerOptions()
      .step_size(0.06)
      .max_steps(400)
      .log_every(10)
      .escape_radius(3.0)
      .stop_at_escape(stop_at_escape);
}

// A run with sync_every 7 and log_every 10 against the host loop's: the same, and the case
// chunks exist for — members finish between looks (by their escape, or training on, by
// divergence), at least two escape between them, and diverged members keep their last
// finite weights.
void expect_host_steps_across_looks(const Outcome& chunked, const Outcome& host,
                                    bool stop_at_escape) {
  expect_same(chunked, host);
  const auto& state = host.result.state;
  EXPECT_TRUE(finished_between_copies(
      state, stop_at_escape ? MemberStatus::escaped : MemberStatus::diverged, 7, 10));
  int64_t escaped_between = 0;
  for (const auto& escape : state.escape) escaped_between += escape.step > 0 && escape.step % 7;
  EXPECT_GE(escaped_between, 2);
  EXPECT_TRUE(torch::isfinite(chunked.weights).all().item<bool>());
}

TEST(DeviceSteps, TakeTheHostLoopsStepsBitForBit) {
  for (const bool stop_at_escape : {true, false}) {
    SCOPED_TRACE(stop_at_escape ? "stop at escape" : "train on past escape");
    const auto options = across_looks_options(stop_at_escape);
    expect_host_steps_across_looks(train(7, options), train(1, options), stop_at_escape);
  }
}

TEST(DeviceSteps, StopAtMaxTimeAndAtTheStepsHooksAskFor) {
  // max_time 2.03 at η = 0.06: check_budget's first k with k·η ≥ 2.03 is 34, mid-chunk;
  // the two largest members diverge before it.
  const auto options =
      TrainerOptions().step_size(0.06).max_steps(400).log_every(25).max_time(2.03).escape_radius(
          1e300);
  const auto host = train(1, options);
  const auto device = train(64, options);
  expect_same(device, host);
  EXPECT_EQ(host.result.state.step, 34);
  EXPECT_TRUE(finished_between_copies(host.result.state, MemberStatus::diverged, 64, 25));
  // An interrupt raised by a hook's on_step at step 20 (between copies unless the hook's
  // next_step is honoured): both stop at the next step with the same state.
  const auto interrupted_host = train(1, options, std::make_shared<testing::InterruptAt>(20));
  const auto interrupted_device = train(64, options, std::make_shared<testing::InterruptAt>(20));
  EXPECT_TRUE(interrupted_device.result.interrupted);
  EXPECT_EQ(interrupted_device.result.state.step, 21);
  expect_same(interrupted_device, interrupted_host);
}

TEST(DeviceStepsCuda, ReplayedCudaGraphsTakeTheHostLoopsSteps_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only LibTorch)";
  for (const bool cuda_graph : {false, true}) {
    SCOPED_TRACE(cuda_graph ? "CUDA graph" : "eager");
    const auto options =
        TrainerOptions().step_size(0.06).max_steps(400).log_every(10).escape_radius(3.0);
    const TrainSetup on_cuda{EngineKind::batched, torch::kCUDA};
    const auto host = train(1, options, nullptr, on_cuda);
    const auto device = train(7, TrainerOptions(options).cuda_graph(cuda_graph), nullptr, on_cuda);
    expect_same(device, host);
  }
}

// The fused engine's chunks: a group of members in SIMD lanes whose members finish one by
// one inside a chunk, lone members beside it (11 members: 8 + 3 singles with AVX-512, 4 + 4 +
// 3 with AVX2), on 1 and 3 threads.
TEST(FusedStepChunks, TakeTheHostLoopsStepsBitForBit) {
  std::vector<double> deltas = kDeltas;
  for (const double delta : {0.04, 0.07, 1.2, 2.0, 0.5}) deltas.push_back(delta);
  const TrainSetup fused{EngineKind::fused, torch::kCPU, deltas};
  const int threads = at::get_num_threads();
  for (const int chunk_threads : {1, 3}) {
    for (const bool stop_at_escape : {true, false}) {
      SCOPED_TRACE(std::to_string(chunk_threads) + " threads, " +
                   (stop_at_escape ? "stop at escape" : "train on past escape"));
      const auto options = across_looks_options(stop_at_escape);
      at::set_num_threads(threads);
      const auto host = train(1, options, nullptr, fused);
      at::set_num_threads(chunk_threads);
      const auto chunked = train(7, options, nullptr, fused);
      at::set_num_threads(threads);
      expect_host_steps_across_looks(chunked, host, stop_at_escape);
    }
  }
}

TEST(FusedStepChunks, StopAtMaxTimeAndAtTheStepsHooksAskFor) {
  const TrainSetup fused{EngineKind::fused};
  const auto options =
      TrainerOptions().step_size(0.06).max_steps(400).log_every(25).max_time(2.03).escape_radius(
          1e300);
  const auto host = train(1, options, nullptr, fused);
  const auto chunked = train(0, options, nullptr, fused);  // 0: the fused engine's default
  expect_same(chunked, host);
  EXPECT_EQ(host.result.state.step, 34);
  EXPECT_TRUE(finished_between_copies(host.result.state, MemberStatus::diverged, 25, 25));
  const auto interrupted_host =
      train(1, options, std::make_shared<testing::InterruptAt>(20), fused);
  const auto interrupted = train(64, options, std::make_shared<testing::InterruptAt>(20), fused);
  EXPECT_TRUE(interrupted.result.interrupted);
  EXPECT_EQ(interrupted.result.state.step, 21);
  expect_same(interrupted, interrupted_host);
}

TEST(DeviceSteps, OnlyTheAtenEnginesRunOnTheDevice) {
  torch::manual_seed(1);
  const auto inputs = torch::randn({5, 3}, torch::kFloat64);
  const auto labels = torch::randn({5}, torch::kFloat64);
  auto model = FeedForward(testing::model_options({{4}, 0.2, 2}, 3).members(2));
  for (const auto kind : {EngineKind::batched, EngineKind::autograd, EngineKind::fused}) {
    const auto engine = make_training_engine(kind, model, inputs, labels, LossKind::square);
    EXPECT_EQ(engine->runs_on_device(), kind != EngineKind::fused);
    EXPECT_EQ(engine->runs_step_chunks(), kind == EngineKind::fused);
    const std::vector<uint8_t> both(2, 1);
    const StepRule rule{0.1, 1.0, true};
    if (kind == EngineKind::fused) {
      EXPECT_THROW(engine->evaluate_on_device(), c10::Error);
      EXPECT_THROW(engine->run_steps(rule, 5, 5, both, {0, 0}), c10::Error);  // no steps
      EXPECT_THROW(engine->run_steps(rule, 5, 9, both, {0}), c10::Error);     // one flag short
    } else {
      EXPECT_THROW(engine->run_steps(rule, 0, 3, both, {0, 0}), c10::Error);
    }
  }
}

}  // namespace
}  // namespace ncflab

// Gradient-flow training (train.integrator: flow): escape times equal closed forms of flows
// that have one; gradient descent's escape converges to the flow's at first order in η;
// t_esc·δ^(L−2)/T* → 1 monotonically over a δ sweep; rows by dense output leave the steps
// alone; ensemble members equal separate runs; an interrupted run resumes bit for bit.
#include <cmath>
#include <csignal>
#include <numeric>

#include "interrupt_at.h"
#include "ncflab/core/signals.h"
#include "ncflab/experiment/checkpoint.h"
#include "ncflab/model/data.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/ncf/ncf.h"
#include "ncflab/train/hooks/checkpoint_hook.h"
#include "ncflab/train/trainer.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::InterruptAt;
using testing::NetCase;

// Every metrics row the trainer sends: member, iteration, time and the values.
class RecordingSink final : public MetricsSink {
 public:
  struct Row {
    int64_t member;
    int64_t step;
    double time;
    std::vector<double> values;
  };
  void begin(const std::vector<std::string>& names) override { names_ = names; }
  void row(int64_t member, int64_t step, double time, const std::vector<double>& values) override {
    rows.push_back({member, step, time, values});
  }
  void flush() override {}
  double value(const Row& row, const std::string& name) const {
    const auto at = std::find(names_.begin(), names_.end(), name);
    return row.values[static_cast<size_t>(at - names_.begin())];
  }
  std::vector<Row> rows;

 private:
  std::vector<std::string> names_;
};

TrainerOptions flow_options() {
  return TrainerOptions().integrator(Integrator::gradient_flow).max_steps(100000);
}

// One input x = 1, label y = 1, widths [1], σ(z) = z³ for z > 0: H = v·z³. Started balanced,
// z = √3·v (z² − 3v² is conserved), the flow reduces to ds/dt = 2a·s²·(y − a·s²) for
// s = v², a = 3√3, with ‖w‖ = 2v; so the time to reach ‖w‖ = r from ‖w0‖ = δ is
// t(s) = [−1/(y·s) + √(a/y)/y · artanh(s·√(a/y))] / (2a) between s = δ²/4 and r²/4.
struct BalancedCubicNeuron {
  static constexpr double kLabel = 1.0;
  torch::Tensor inputs = torch::ones({1, 1}, torch::kFloat64);
  torch::Tensor labels = torch::full({1}, kLabel, torch::kFloat64);
  NetCase net{{1}, 0.5, 3};

  FeedForward model(const std::vector<double>& deltas) const {
    const auto members = static_cast<int64_t>(deltas.size());
    auto model = FeedForward(testing::model_options(net, 1).members(members));
    auto flat = torch::empty({members, 2}, torch::kFloat64);
    for (int64_t s = 0; s < members; ++s) {
      const double v = deltas[static_cast<size_t>(s)] / 2;
      flat[s][0] = std::sqrt(3.0) * v;  // W1 = z
      flat[s][1] = v;                   // W2 = v
    }
    model->load_flat(flat);
    return model;
  }

  static double time_to(double delta, double radius) {
    const double a = 3 * std::sqrt(3.0);
    const double y = kLabel;
    const auto antiderivative = [&](double s) {
      return (-1 / (y * s) + std::sqrt(a / y) / y * std::atanh(s * std::sqrt(a / y))) / (2 * a);
    };
    return antiderivative(radius * radius / 4) - antiderivative(delta * delta / 4);
  }
};

TEST(GradientFlow, EscapeTimeEqualsTheClosedFormOfABalancedCubicNeuron) {
  const BalancedCubicNeuron problem;
  for (const double rtol : {1e-6, 1e-9}) {
    for (const double delta : {1e-2, 1e-5}) {
      SCOPED_TRACE(::testing::Message() << "rtol " << rtol << " delta " << delta);
      auto model = problem.model({delta});
      const auto result = Trainer(model, problem.inputs, problem.labels, LossKind::square, {delta},
                                  flow_options().rtol(rtol).escape_radius(0.1))
                              .run();
      ASSERT_EQ(result.state.status[0], MemberStatus::escaped);
      const double exact = BalancedCubicNeuron::time_to(delta, 0.1);
      const double error = std::abs(result.state.escape[0].time / exact - 1);
      EXPECT_LT(error, 10 * rtol) << "t_esc " << result.state.escape[0].time << " closed form "
                                  << exact;
      std::cout << "rtol " << rtol << ", delta " << delta << ": t_esc off the closed form by "
                << error << " (" << result.state.steps_done[0] << " steps)\n";
      // The run stops at the crossing itself: ‖w‖ = r_esc there, to the interpolant's accuracy.
      EXPECT_NEAR(model->flatten().norm().item<double>(), 0.1, 1e-3 * rtol);
      EXPECT_EQ(result.state.times[0], result.state.escape[0].time);
      // A few hundred steps whatever δ is: the step adapts to ‖w‖.
      EXPECT_LT(result.state.steps_done[0], 2000);
    }
  }
}

TEST(GradientFlow, SingleLayerEscapeTimeEqualsItsLogisticClosedForm) {
  // H = max(w·x, 0)² with x = 1: u = w² follows du/dt = 4u(y − u), so L = 2 and
  // t(r) = ln[(y/u0 − 1)/(y/r² − 1)]/(4y).
  const auto inputs = torch::ones({1, 1}, torch::kFloat64);
  const double y = 2.0;
  const auto labels = torch::full({1}, y, torch::kFloat64);
  const double delta = 1e-6;
  auto model = FeedForward(
      testing::model_options(NetCase{{1}, 0.0, 2, ModelKind::single_layer}, 1).members(1));
  model->load_flat(torch::full({1, 1}, delta, torch::kFloat64));
  const auto result = Trainer(model, inputs, labels, LossKind::square, {delta},
                              flow_options().rtol(1e-9).escape_radius(1.0))
                          .run();
  ASSERT_EQ(result.state.status[0], MemberStatus::escaped);
  const double exact = std::log((y / (delta * delta) - 1) / (y - 1)) / (4 * y);
  // The relative error accumulates over ln(1/δ²) ≈ 28 e-folds of growth.
  EXPECT_LT(std::abs(result.state.escape[0].time / exact - 1), 100 * 1e-9);
  EXPECT_EQ(result.state.escape[0].rescaled_time, result.state.escape[0].time);  // L = 2
}

TEST(GradientFlow, GradientDescentEscapeConvergesToTheFlowsAtFirstOrderInTheStep) {
  const BalancedCubicNeuron problem;
  const double delta = 1e-3;
  auto flowing = problem.model({delta});
  const double flow_time = Trainer(flowing, problem.inputs, problem.labels, LossKind::square,
                                   {delta}, flow_options().rtol(1e-10))
                               .run()
                               .state.escape[0]
                               .time;
  EXPECT_LT(std::abs(flow_time / BalancedCubicNeuron::time_to(delta, 0.1) - 1), 1e-8);
  // GD lags the flow by c·η, c ≈ ln(s_esc/s_0) ≈ 9 here, plus under one step of rounding up
  // to a whole step: halving η halves the lag.
  std::vector<double> lags;
  for (const double step : {2.0, 1.0, 0.5}) {
    auto model = problem.model({delta});
    const auto result =
        Trainer(model, problem.inputs, problem.labels, LossKind::square, {delta},
                TrainerOptions().step_size(step).max_steps(10'000'000).escape_radius(0.1))
            .run();
    ASSERT_EQ(result.state.status[0], MemberStatus::escaped);
    lags.push_back(result.state.escape[0].time - flow_time);
    EXPECT_GT(lags.back(), 0) << "eta " << step;
  }
  for (size_t i = 0; i + 1 < lags.size(); ++i) {
    const double order = std::log2(lags[i] / lags[i + 1]);
    EXPECT_NEAR(order, 1.0, 0.2) << "lags " << lags[i] << ", " << lags[i + 1];
    std::cout << "GD lag behind the flow: " << lags[i] << " -> " << lags[i + 1]
              << " when eta halves: order " << order << "\n";
  }
}

// Two-layer p = 3 net (L = 4) on a small teacher problem.
struct CubicProblem {
  Dataset data;
  NetCase net{{6}, 0.5, 3};
  CubicProblem() {
    data = make_synthetic_data(SyntheticDataOptions().n(20).d(4).seed(5).teacher_activation(
        PolyLeakyReLUOptions().alpha(0.5).p(3)));
  }
  /// Members with the given δ, all from the w0 of `seed`.
  FeedForward model(const std::vector<double>& deltas, uint64_t seed) const {
    return model(deltas, std::vector<uint64_t>(deltas.size(), seed));
  }
  FeedForward model(const std::vector<double>& deltas, const std::vector<uint64_t>& seeds) const {
    return FeedForward(testing::model_options(net, 4)
                           .members(static_cast<int64_t>(deltas.size()))
                           .member_init_scales(deltas)
                           .member_seeds(seeds));
  }
};

TEST(GradientFlow, RescaledEscapeTimeOverTStarApproachesOneMonotonicallyAsDeltaShrinks) {
  const CubicProblem problem;
  const std::vector<double> deltas = {1e-1, 1e-2, 1e-3, 1e-4, 1e-6};
  auto model = problem.model(deltas, 3);
  const auto w0 = unit_rows(model->flatten().detach());
  const Ncf ncf(model->options, problem.data.inputs, problem.data.labels);
  const auto flow = integrate_ncf_flow(ncf, w0.narrow(0, 0, 1), FlowOptions());
  ASSERT_EQ(flow.members[0].status, FlowStatus::blew_up);
  const double blowup = flow.members[0].blowup_time;
  // One ensemble: every member its own step sizes and its own escape.
  const auto result = Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square,
                              deltas, flow_options().escape_radius(0.1))
                          .run();
  std::vector<double> errors;
  for (size_t s = 0; s < deltas.size(); ++s) {
    ASSERT_EQ(result.state.status[s], MemberStatus::escaped) << "delta " << deltas[s];
    errors.push_back(std::abs(result.state.escape[s].rescaled_time / blowup - 1));
    if (s > 0) {
      EXPECT_LT(errors[s], errors[s - 1]) << "delta " << deltas[s];
    }
  }
  EXPECT_LT(errors.back(), 1e-4);
  // δ = 1e-10: the escape at t ~ 1e20 while the last steps are O(1) long (t is kept as a
  // double-double); the ratio stays at the integrator's accuracy.
  auto tiny = problem.model({1e-10}, 3);
  const auto far = Trainer(tiny, problem.data.inputs, problem.data.labels, LossKind::square,
                           {1e-10}, flow_options().escape_radius(0.1))
                       .run();
  ASSERT_EQ(far.state.status[0], MemberStatus::escaped);
  EXPECT_LT(std::abs(far.state.escape[0].rescaled_time / blowup - 1), 1e-4);
  const auto final_direction = unit_rows(model->flatten().detach()).narrow(0, deltas.size() - 1, 1);
  EXPECT_GT((final_direction * flow.direction).sum().item<double>(), 0.9999);
}

TEST(GradientFlow, RowsByDenseOutputLeaveTheStepsAlone) {
  const CubicProblem problem;
  const std::vector<double> deltas = {1e-2, 3e-3};
  std::vector<TrainResult> results;
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  std::vector<torch::Tensor> finals;
  for (const double interval : {0.05, 0.013}) {
    auto model = problem.model(deltas, 1);
    Trainer trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
                    flow_options().log_interval(interval));
    sinks.push_back(std::make_shared<RecordingSink>());
    trainer.set_metrics_sink(sinks.back());
    results.push_back(trainer.run());
    finals.push_back(model->flatten().detach());
  }
  EXPECT_TRUE(torch::equal(finals[0], finals[1]));
  for (size_t s = 0; s < deltas.size(); ++s) {
    EXPECT_EQ(results[0].state.steps_done[s], results[1].state.steps_done[s]);
    EXPECT_EQ(results[0].state.escape[s].time, results[1].state.escape[s].time);
  }
  // Rows sit at δ^(L−2)·t = j·log_interval, and each member's last row at its escape.
  const auto& sink = *sinks[1];
  for (const auto& row : sink.rows) {
    const auto s = static_cast<size_t>(row.member);
    const auto& escape = results[1].state.escape[s];
    if (row.time == escape.time) continue;
    EXPECT_NEAR(sink.value(row, "rescaled_time"), 0.013 * static_cast<double>(row.step), 1e-15);
    EXPECT_LT(row.time, escape.time);
  }
  EXPECT_GT(sink.rows.size(), 20u);
}

TEST(GradientFlow, EnsembleMembersEqualSeparateRuns) {
  const CubicProblem problem;
  const std::vector<double> deltas = {3e-2, 1e-2, 5e-2};
  auto ensemble = problem.model(deltas, 2);
  const auto w = ensemble->flatten().detach().clone();
  const auto options = flow_options().engine(EngineKind::fused);
  const auto together =
      Trainer(ensemble, problem.data.inputs, problem.data.labels, LossKind::square, deltas, options)
          .run();
  for (int64_t s = 0; s < 3; ++s) {
    const auto i = static_cast<size_t>(s);
    auto single = FeedForward(testing::model_options(problem.net, 4).members(1));
    single->load_flat(w.narrow(0, s, 1));
    const auto alone = Trainer(single, problem.data.inputs, problem.data.labels, LossKind::square,
                               {deltas[i]}, options)
                           .run();
    EXPECT_EQ(alone.state.steps_done[0], together.state.steps_done[i]);
    EXPECT_EQ(alone.state.evaluations[0], together.state.evaluations[i]);
    EXPECT_EQ(alone.state.escape[0].time, together.state.escape[i].time);
    EXPECT_TRUE(torch::equal(single->flatten(), ensemble->flatten().narrow(0, s, 1)));
  }
}

TEST(GradientFlow, CpuLoopsTakeTheStepsOfTheAtenPath) {
  // The CPU path computes the stages in loops; CUDA's in batched ATen ops. Their stage
  // points agree bit for bit, their norms (summed in another order) to rounding.
  const CubicProblem problem;
  const std::vector<double> deltas = {3e-2, 1e-3, 5e-2};
  std::vector<TrainResult> results;
  std::vector<torch::Tensor> finals;
  for (const bool loops : {true, false}) {
    auto model = problem.model(deltas, {2, 3, 4});
    results.push_back(Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square,
                              deltas, flow_options().flow_host_loops(loops))
                          .run());
    finals.push_back(model->flatten().detach());
  }
  for (size_t s = 0; s < deltas.size(); ++s) {
    ASSERT_EQ(results[0].state.status[s], MemberStatus::escaped);
    EXPECT_EQ(results[0].state.steps_done[s], results[1].state.steps_done[s]);
    EXPECT_EQ(results[0].state.flow->rejected[s], results[1].state.flow->rejected[s]);
    EXPECT_NEAR(results[0].state.escape[s].time / results[1].state.escape[s].time, 1.0, 1e-12);
  }
  EXPECT_LT((finals[0] - finals[1]).abs().max().item<double>(), 1e-12);
}

// Runs `options` straight, then interrupted at row `interrupt_row` (checkpoints every 25
// rows), checkpointed and resumed: the same weights, counters and metrics rows, bit for bit.
void expect_interrupted_flow_to_resume_bit_for_bit(const CubicProblem& problem,
                                                   const std::vector<double>& deltas,
                                                   const std::vector<uint64_t>& seeds,
                                                   const TrainerOptions& options,
                                                   int64_t interrupt_row) {
  testing::TempDir dir;
  const auto path = std::filesystem::path(dir.path("checkpoint.pt"));
  const auto members = static_cast<int64_t>(deltas.size());
  auto straight = problem.model(deltas, seeds);
  Trainer straight_trainer(straight, problem.data.inputs, problem.data.labels, LossKind::square,
                           deltas, options);
  const auto straight_rows = std::make_shared<RecordingSink>();
  straight_trainer.set_metrics_sink(straight_rows);
  const auto straight_result = straight_trainer.run();
  ASSERT_GT(straight_result.state.step, interrupt_row + 1);

  auto interrupted = problem.model(deltas, seeds);
  {
    InterruptHandler handler;
    Trainer trainer(interrupted, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
                    options);
    trainer.add_hook(std::make_shared<InterruptAt>(interrupt_row));
    trainer.add_hook(std::make_shared<CheckpointHook>(
        25, [&](const TrainState& state) { save_checkpoint(path, state, *state.weights); }));
    EXPECT_TRUE(trainer.run().interrupted);
  }
  const auto checkpoint = load_checkpoint(path, members, straight->layer_shapes());
  EXPECT_EQ(checkpoint.state.step, interrupt_row + 1);
  ASSERT_TRUE(checkpoint.state.flow);
  auto resumed = problem.model(deltas, seeds);
  {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < checkpoint.weights.size(); ++l)
      resumed->weights()[l].copy_(checkpoint.weights[l]);
  }
  InterruptHandler handler;  // as `ncflab run --resume` does: a fresh handler
  Trainer trainer(resumed, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
                  options);
  const auto rows = std::make_shared<RecordingSink>();
  trainer.set_metrics_sink(rows);
  trainer.resume_from(checkpoint.state);
  const auto second = trainer.run();
  EXPECT_FALSE(second.interrupted);
  EXPECT_TRUE(torch::equal(resumed->flatten(), straight->flatten()));
  const auto& a = straight_result.state;
  const auto& b = second.state;
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.times, b.times);
  EXPECT_EQ(a.steps_done, b.steps_done);
  EXPECT_EQ(a.evaluations, b.evaluations);
  EXPECT_EQ(a.flow->rejected, b.flow->rejected);
  for (size_t s = 0; s < deltas.size(); ++s) {
    EXPECT_EQ(a.escape[s].step, b.escape[s].step);
    EXPECT_EQ(a.escape[s].time, b.escape[s].time);
  }
  // The resumed rows (from the checkpoint's row on) are the straight run's, value for value.
  std::vector<RecordingSink::Row> tail;
  for (const auto& row : straight_rows->rows) {
    if (row.step >= checkpoint.state.step) tail.push_back(row);
  }
  ASSERT_EQ(tail.size(), rows->rows.size());
  for (size_t r = 0; r < tail.size(); ++r) {
    EXPECT_EQ(tail[r].member, rows->rows[r].member);
    EXPECT_EQ(tail[r].step, rows->rows[r].step);
    EXPECT_EQ(tail[r].time, rows->rows[r].time);
    EXPECT_EQ(tail[r].values, rows->rows[r].values) << "row " << r;
  }
}

TEST(GradientFlow, InterruptedRunResumesBitForBitBetweenTwoEscapes) {
  const CubicProblem problem;
  // Two initial directions with different T*: one member escapes (and freezes) first, and
  // the interrupt falls between the two escapes.
  const std::vector<double> deltas = {2e-2, 3e-2};
  const std::vector<uint64_t> seeds = {4, 9};
  const auto options = flow_options().log_interval(2e-3);
  auto probe = problem.model(deltas, seeds);
  const auto escapes =
      Trainer(probe, problem.data.inputs, problem.data.labels, LossKind::square, deltas, options)
          .run()
          .state.escape;
  const double first = std::min(escapes[0].rescaled_time, escapes[1].rescaled_time);
  const double last = std::max(escapes[0].rescaled_time, escapes[1].rescaled_time);
  ASSERT_GT(last - first, 10 * 2e-3) << "the two escapes are too close to fall between";
  expect_interrupted_flow_to_resume_bit_for_bit(problem, deltas, seeds, options,
                                                static_cast<int64_t>(first / 2e-3) + 3);
}

TEST(GradientFlow, InterruptedRunResumesBitForBitPastItsEscape) {
  const CubicProblem problem;
  const std::vector<double> deltas = {2e-2};
  auto probe = problem.model(deltas, 4);
  const double escape = Trainer(probe, problem.data.inputs, problem.data.labels, LossKind::square,
                                deltas, flow_options())
                            .run()
                            .state.escape[0]
                            .time;
  // On past r_esc until 1 % after the escape: the run resumes from a row near the escape.
  const auto options =
      flow_options().stop_at_escape(false).max_time(1.01 * escape).log_interval(2e-3);
  const int64_t row = static_cast<int64_t>(escape * deltas[0] * deltas[0] / 2e-3) - 1;
  expect_interrupted_flow_to_resume_bit_for_bit(problem, deltas, {4}, options, row);
}

TEST(GradientFlow, StiffnessPastTheEscapeIsDetected) {
  // Past the escape the loss converges: the Hessian's large eigenvalues, not the error
  // estimate, limit the explicit steps, and the run says from when.
  const CubicProblem problem;
  const std::vector<double> deltas = {2e-2};
  auto model = problem.model(deltas, 4);
  const auto result = Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square,
                              deltas, flow_options().stop_at_escape(false).max_steps(4000))
                          .run();
  ASSERT_GE(result.state.escape[0].step, 0);
  const double stiff = result.state.flow->stiff_time[0];
  ASSERT_FALSE(std::isnan(stiff)) << "no stiffness seen in 4000 steps";
  EXPECT_GT(stiff, result.state.escape[0].time);
  EXPECT_LT(stiff, result.state.times[0]);
}

TEST(GradientFlow, LeakyReluNetCrossesItsKinksAndEscapesLikeSmallStepGradientDescent) {
  // p = 1: ∇ℓ jumps where a unit's preactivation changes sign on some input.
  const auto data = make_synthetic_data(SyntheticDataOptions().n(20).d(4).seed(8));
  const NetCase net{{6}, 0.2, 1};
  const double delta = 1e-3;
  const auto make = [&] {
    return FeedForward(testing::model_options(net, 4).members(1).init_scale(delta).seed(6));
  };
  auto flowing = make();
  const auto flow = Trainer(flowing, data.inputs, data.labels, LossKind::square, {delta},
                            flow_options().escape_radius(0.5))
                        .run();
  auto descending = make();
  const auto descent =
      Trainer(descending, data.inputs, data.labels, LossKind::square, {delta},
              TrainerOptions().step_size(1e-3).max_steps(10'000'000).escape_radius(0.5))
          .run();
  ASSERT_EQ(flow.state.status[0], MemberStatus::escaped);
  ASSERT_EQ(descent.state.status[0], MemberStatus::escaped);
  EXPECT_NEAR(flow.state.escape[0].time / descent.state.escape[0].time, 1.0, 1e-2);
  const auto direction = [](const FeedForward& model) {
    return unit_rows(model->flatten().detach());
  };
  EXPECT_GT((direction(flowing) * direction(descending)).sum().item<double>(), 0.999);
  std::cout << "p = 1 flow: " << flow.state.steps_done[0] << " steps, "
            << flow.state.flow->rejected[0] << " rejected, " << flow.state.evaluations[0]
            << " gradient evaluations; gd: " << descent.state.steps_done[0] << " steps\n";
}

TEST(GradientFlow, Float32RunsAtTheToleranceItsRoundingAllows) {
  // The default rtol = 1e-8 lies below float32's resolution (each step rounds w by ~1e-7):
  // the stepper integrates at minimum_rtol(float32) instead, in fewer steps, and agrees
  // with float64 to about that tolerance.
  const CubicProblem problem;
  const double delta = 1e-2;
  auto model64 = problem.model({delta}, 5);
  auto model32 = FeedForward(testing::model_options(problem.net, 4)
                                 .members(1)
                                 .member_init_scales({delta})
                                 .member_seeds({5})
                                 .dtype(torch::kFloat32));
  const auto wide = Trainer(model64, problem.data.inputs, problem.data.labels, LossKind::square,
                            {delta}, flow_options())
                        .run();
  const auto narrow =
      Trainer(model32, problem.data.inputs.to(torch::kFloat32),
              problem.data.labels.to(torch::kFloat32), LossKind::square, {delta}, flow_options())
          .run();
  ASSERT_EQ(narrow.state.status[0], MemberStatus::escaped);
  EXPECT_NEAR(narrow.state.escape[0].time / wide.state.escape[0].time, 1.0, 1e-4);
  EXPECT_LT(narrow.state.steps_done[0], wide.state.steps_done[0]);
  EXPECT_GT(minimum_rtol(torch::kFloat32), 1e-6);
  EXPECT_LT(minimum_rtol(torch::kFloat64), 1e-13);
}

TEST(GradientFlow, RejectsBadTolerances) {
  const CubicProblem problem;
  auto model = problem.model({0.1}, 1);
  for (const auto& options :
       {flow_options().rtol(0).atol(0), flow_options().rtol(1.5), flow_options().atol(-1),
        flow_options().log_interval(0), flow_options().max_time(-1)}) {
    EXPECT_THROW(
        Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, {0.1}, options),
        c10::Error);
  }
}

TEST(TrainerCuda, GradientFlowOnTheGpuTakesTheCpusSteps_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only LibTorch)";
  const CubicProblem problem;
  const std::vector<double> deltas = {3e-2, 1e-4, 1e-8};
  auto cpu = problem.model(deltas, {2, 3, 4});
  auto gpu = problem.model(deltas, {2, 3, 4});
  gpu->to(torch::kCUDA);
  const auto on_cpu = Trainer(cpu, problem.data.inputs, problem.data.labels, LossKind::square,
                              deltas, flow_options())
                          .run();
  const auto on_gpu =
      Trainer(gpu, problem.data.inputs.to(torch::kCUDA), problem.data.labels.to(torch::kCUDA),
              LossKind::square, deltas, flow_options())
          .run();
  for (size_t s = 0; s < deltas.size(); ++s) {
    ASSERT_EQ(on_gpu.state.status[s], MemberStatus::escaped);
    EXPECT_NEAR(on_gpu.state.escape[s].time / on_cpu.state.escape[s].time, 1.0, 1e-9);
  }
  EXPECT_LT((gpu->flatten().cpu() - cpu->flatten()).abs().max().item<double>(), 1e-9);
}

}  // namespace
}  // namespace ncflab

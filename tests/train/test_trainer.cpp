// The trainer and its engines: fused, batched and autograd agree on every activation
// family; escape times approach the NCF flow's T*/δ^(L−2) as δ shrinks; ensemble members
// equal separate runs; an interrupted run resumes to the same weights bit for bit;
// divergence is caught with the last good weights kept.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <sstream>
#include <string>

#include "interrupt_at.h"
#include "ncflab/core/cpu_isa.h"
#include "ncflab/core/signals.h"
#include "ncflab/experiment/checkpoint.h"
#include "ncflab/model/data.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/ncf/ncf.h"
#include "ncflab/train/hooks/checkpoint_hook.h"
#include "ncflab/train/hooks/progress_hook.h"
#include "ncflab/train/trainer.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::InterruptAt;
using testing::NetCase;
using testing::SeededTest;

FeedForward make_model(int64_t d, const NetCase& net, int64_t members, double delta,
                       uint64_t seed) {
  return FeedForward(testing::model_options(net, d).members(members).init_scale(delta).seed(seed));
}

FeedForward copy_of(const FeedForward& model) {
  return FeedForward(std::dynamic_pointer_cast<FeedForwardImpl>(model->clone()));
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  return relative_difference(torch::tensor(a, torch::kFloat64), torch::tensor(b, torch::kFloat64));
}

class EngineAgreement : public ::testing::TestWithParam<NetCase> {
 protected:
  void SetUp() override { torch::manual_seed(11); }
};

TEST_P(EngineAgreement, FusedBatchedAndAutogradTakeTheSameSteps) {
  const auto& net = GetParam();
  for (const auto loss : {LossKind::square, LossKind::logistic}) {
    SCOPED_TRACE(loss_name(loss));
    const int64_t n = 13;
    const int64_t d = 4;
    const auto inputs = torch::randn({n, d}, torch::kFloat64);
    auto labels = torch::randn({n}, torch::kFloat64);
    if (loss == LossKind::logistic)
      labels = torch::where(labels >= 0, 1.0, -1.0).to(torch::kFloat64);
    // δ = 0.7 keeps the outputs O(1), so every term of the gradient matters.
    const auto reference_model = make_model(d, net, 3, 0.7, 5);
    std::vector<FeedForward> models;
    std::vector<std::unique_ptr<TrainingEngine>> engines;
    for (const auto kind : {EngineKind::autograd, EngineKind::batched, EngineKind::fused}) {
      models.push_back(copy_of(reference_model));
      engines.push_back(make_training_engine(kind, models.back(), inputs, labels, loss));
      EXPECT_EQ(engines.back()->kind(), kind);
    }
    const std::vector<uint8_t> active(3, 1);
    for (int step = 0; step < 20; ++step) {
      std::vector<StepStatistics> stats(engines.size());
      for (size_t e = 0; e < engines.size(); ++e) engines[e]->evaluate(active, stats[e]);
      for (size_t e = 1; e < engines.size(); ++e) {
        SCOPED_TRACE(engine_name(engines[e]->kind()));
        EXPECT_LT(relative_difference(stats[e].loss, stats[0].loss), 1e-12);
        EXPECT_LT(relative_difference(stats[e].norm, stats[0].norm), 1e-12);
        EXPECT_LT(relative_difference(stats[e].gradient_norm, stats[0].gradient_norm), 1e-12);
        for (size_t l = 0; l < models[0]->weights().size(); ++l) {
          EXPECT_LT(relative_difference(engines[e]->gradients()[l], engines[0]->gradients()[l]),
                    1e-12)
              << "layer " << l + 1 << " step " << step;
          EXPECT_LT(relative_difference(models[e]->weights()[l], models[0]->weights()[l]), 1e-12);
        }
      }
      for (auto& engine : engines) engine->update(1e-2, active);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, EngineAgreement, ::testing::ValuesIn(testing::net_cases()),
                         testing::case_name);

class WideEngineAgreement : public ::testing::TestWithParam<NetCase> {
 protected:
  void SetUp() override { torch::manual_seed(12); }
};

TEST_P(WideEngineAgreement, FusedPathsTakeTheStepsOfBatchedAndAutograd) {
  // Nets wide enough for the fused engine's tiled products: on every instruction set the same
  // steps as the batched ATen engine and autograd, to 1e-12; and the same bits whether each
  // member runs on a thread of its own (members ≥ threads) or is spread over the threads.
  const auto& net = GetParam();
  const int64_t d = 4;
  const auto reference_model = make_model(d, net, 3, 0.7, 5);
  int64_t parameters = 0;
  for (const auto& w : reference_model->weights()) parameters += w[0].numel();
  const int64_t n = ((int64_t{1} << 20) + parameters - 1) / parameters;
  ASSERT_TRUE(fused_engine_is_wide(n, parameters));
  ASSERT_FALSE(fused_engine_is_wide(n - 1, parameters));
  const int threads = at::get_num_threads();
  for (const auto loss : {LossKind::square, LossKind::logistic}) {
    SCOPED_TRACE(loss_name(loss));
    const auto inputs = torch::randn({n, d}, torch::kFloat64);
    auto labels = torch::randn({n}, torch::kFloat64);
    if (loss == LossKind::logistic)
      labels = torch::where(labels >= 0, 1.0, -1.0).to(torch::kFloat64);
    std::vector<FeedForward> models;
    std::vector<std::unique_ptr<TrainingEngine>> engines;
    std::vector<std::string> names;
    // Members spread over 4 and 7 threads, a member per thread on 3 and all on 1 (the widest
    // instruction set, as the spread ones): these take the same steps bit for bit.
    std::vector<size_t> same_bits;
    const auto add = [&](const std::string& name, int team, auto make) {
      at::set_num_threads(team);
      models.push_back(copy_of(reference_model));
      engines.push_back(make(models.back()));
      names.push_back(name);
      return engines.size() - 1;
    };
    for (const auto kind : {EngineKind::autograd, EngineKind::batched}) {
      add(engine_name(kind), threads, [&](const FeedForward& model) {
        return make_training_engine(kind, model, inputs, labels, loss);
      });
    }
    for (const int team : {4, 7}) {
      same_bits.push_back(add("fused, 3 members spread over " + std::to_string(team) + " threads",
                              team, [&](const FeedForward& model) {
                                return make_training_engine(EngineKind::fused, model, inputs,
                                                            labels, loss);
                              }));
    }
    size_t widest_alone = 0;
    for (const auto isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (!cpu_isa_available(isa)) continue;
      widest_alone =
          add(std::string("fused, tiles, ") + cpu_isa_name(isa), 1, [&](const FeedForward& model) {
            return make_fused_engine(model, inputs, labels, loss, isa);
          });
    }
    same_bits.push_back(widest_alone);
    const size_t reference = add("fused, tiles, 3 threads", 3, [&](const FeedForward& model) {
      return make_training_engine(EngineKind::fused, model, inputs, labels, loss);
    });
    at::set_num_threads(threads);
    const std::vector<uint8_t> active = {1, 1, 1};
    for (int step = 0; step < 4; ++step) {
      std::vector<StepStatistics> stats(engines.size());
      for (size_t e = 0; e < engines.size(); ++e) engines[e]->evaluate(active, stats[e]);
      for (size_t e = 1; e < engines.size(); ++e) {
        SCOPED_TRACE(names[e]);
        EXPECT_LT(relative_difference(stats[e].loss, stats[0].loss), 1e-12);
        EXPECT_LT(relative_difference(stats[e].gradient_norm, stats[0].gradient_norm), 1e-12);
        for (size_t l = 0; l < models[0]->weights().size(); ++l) {
          EXPECT_LT(relative_difference(engines[e]->gradients()[l], engines[0]->gradients()[l]),
                    1e-12)
              << "layer " << l + 1 << " step " << step;
        }
      }
      for (const size_t e : same_bits) {
        SCOPED_TRACE(names[e]);
        EXPECT_EQ(stats[e].loss, stats[reference].loss);
        EXPECT_EQ(stats[e].norm, stats[reference].norm);
        EXPECT_EQ(stats[e].gradient_norm, stats[reference].gradient_norm);
        for (size_t l = 0; l < models[0]->weights().size(); ++l)
          EXPECT_TRUE(torch::equal(engines[e]->gradients()[l], engines[reference]->gradients()[l]));
      }
      for (auto& engine : engines) engine->update(1e-4, active);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, WideEngineAgreement,
                         ::testing::Values(NetCase{{48, 40}, 0.2, 1}, NetCase{{64}, 0.0, 2},
                                           NetCase{{80}, 0.3, 3, ModelKind::single_layer}),
                         testing::case_name);

class TrainerTest : public SeededTest {};

// Two-layer p = 2 net (L = 3) on a small teacher problem, as in the quickstart.
struct SmallProblem {
  Dataset data;
  NetCase net{{6}, 0.2, 2};
  SmallProblem() {
    data = make_synthetic_data(SyntheticDataOptions().n(20).d(4).seed(3).teacher_activation(
        PolyLeakyReLUOptions().alpha(0.2).p(2)));
  }
};

TEST_F(TrainerTest, RescaledEscapeTimeApproachesTheFlowsBlowUpTime) {
  SmallProblem problem;
  const auto model = make_model(4, problem.net, 1, 1.0, 7);
  const auto w0 = unit_rows(model->flatten().detach());
  const Ncf ncf(model->options, problem.data.inputs, problem.data.labels);
  const auto flow = integrate_ncf_flow(ncf, w0, FlowOptions());
  ASSERT_EQ(flow.members[0].status, FlowStatus::blew_up);
  const double blowup = flow.members[0].blowup_time;
  std::vector<double> errors;
  for (const double delta : {1e-1, 1e-2, 3e-3}) {
    auto trained = make_model(4, problem.net, 1, delta, 7);
    Trainer trainer(trained, problem.data.inputs, problem.data.labels, LossKind::square, {delta},
                    TrainerOptions().step_size(1e-3).max_steps(2'000'000).escape_radius(0.1));
    const auto result = trainer.run();
    const auto& escape = result.state.escape[0];
    ASSERT_EQ(result.state.status[0], MemberStatus::escaped) << "delta " << delta;
    EXPECT_DOUBLE_EQ(escape.rescaled_time, escape.time * delta);  // L − 2 = 1
    errors.push_back(std::abs(escape.rescaled_time - blowup) / blowup);
    if (delta == 3e-3) {
      const auto direction = unit_rows(trained->flatten().detach());
      EXPECT_GT((direction * flow.direction).sum().item<double>(), 0.99);
    }
  }
  EXPECT_GT(errors[0], errors[1]);
  EXPECT_GT(errors[1], errors[2]);
  EXPECT_LT(errors[2], 0.03) << "t_esc·δ = " << (1 - errors[2]) * blowup << ", T* = " << blowup;
}

TEST_F(TrainerTest, EnsembleMembersEqualSeparateRuns) {
  SmallProblem problem;
  for (const auto kind : {EngineKind::fused, EngineKind::batched}) {
    SCOPED_TRACE(engine_name(kind));
    const std::vector<double> deltas = {0.05, 0.02, 0.08};
    auto ensemble = make_model(4, problem.net, 3, 1.0, 1);
    ensemble->initialize(torch::tensor(deltas, torch::kFloat64), 1);
    std::vector<FeedForward> singles;
    for (int64_t s = 0; s < 3; ++s) {
      auto single = make_model(4, problem.net, 1, 1.0, 0);
      single->load_flat(ensemble->flatten().detach().narrow(0, s, 1));
      singles.push_back(single);
    }
    const auto options =
        TrainerOptions().step_size(1e-2).max_steps(3000).escape_radius(0.2).engine(kind);
    const auto together = Trainer(ensemble, problem.data.inputs, problem.data.labels,
                                  LossKind::square, deltas, options)
                              .run();
    for (int64_t s = 0; s < 3; ++s) {
      const auto alone =
          Trainer(singles[static_cast<size_t>(s)], problem.data.inputs, problem.data.labels,
                  LossKind::square, {deltas[static_cast<size_t>(s)]}, options)
              .run();
      EXPECT_EQ(alone.state.status[0], together.state.status[static_cast<size_t>(s)]);
      EXPECT_EQ(alone.state.escape[0].step, together.state.escape[static_cast<size_t>(s)].step);
      EXPECT_EQ(alone.state.steps_done[0], together.state.steps_done[static_cast<size_t>(s)]);
      const auto mine = ensemble->flatten().detach().narrow(0, s, 1);
      const auto single = singles[static_cast<size_t>(s)]->flatten().detach();
      if (kind == EngineKind::fused) {
        EXPECT_TRUE(torch::equal(single, mine));  // the same loops on the same numbers
      } else {
        // Members never mix, but batched matmuls may round differently for S = 1 and S = 3.
        EXPECT_LT(relative_difference(single, mine), 1e-13);
      }
    }
  }
}

TEST_F(TrainerTest, EscapedMembersStopAtTheirEscapeStep) {
  SmallProblem problem;
  const std::vector<double> deltas = {0.05, 0.01};
  auto model = make_model(4, problem.net, 2, 1.0, 1);
  model->initialize(torch::tensor(deltas, torch::kFloat64), 1);
  const auto result =
      Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
              TrainerOptions().step_size(1e-2).max_steps(100000).escape_radius(0.2))
          .run();
  for (size_t s = 0; s < 2; ++s) {
    EXPECT_EQ(result.state.status[s], MemberStatus::escaped);
    EXPECT_EQ(result.state.steps_done[s], result.state.escape[s].step);
    EXPECT_GE(result.state.escape[s].norm, 0.2);
    // The final weights are w_{k_esc}: their norm is the one recorded at escape.
    EXPECT_DOUBLE_EQ(model->flatten()[static_cast<int64_t>(s)].norm().item<double>(),
                     result.state.escape[s].norm);
  }
  // The smaller δ escapes later (t_esc ~ T*/δ).
  EXPECT_GT(result.state.escape[1].step, result.state.escape[0].step);
}

// Two members trained straight, and interrupted at step 1234, checkpointed and resumed:
// the same weights bit for bit.
void expect_interrupted_run_to_resume_bit_for_bit(const SmallProblem& problem, const NetCase& net) {
  testing::TempDir dir;
  const auto checkpoint_path = std::filesystem::path(dir.path("checkpoint.pt"));
  const auto options = TrainerOptions().step_size(1e-2).max_steps(2500).stop_at_escape(false);
  const std::vector<double> deltas = {0.02, 0.03};
  const auto fresh = [&] {
    auto model = make_model(4, net, 2, 1.0, 4);
    model->initialize(torch::tensor(deltas, torch::kFloat64), 4);
    return model;
  };

  auto straight = fresh();
  Trainer(straight, problem.data.inputs, problem.data.labels, LossKind::square, deltas, options)
      .run();

  auto interrupted = fresh();
  TrainResult first;
  {
    InterruptHandler handler;
    Trainer trainer(interrupted, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
                    options);
    trainer.add_hook(std::make_shared<InterruptAt>(1234));
    trainer.add_hook(std::make_shared<CheckpointHook>(1000, [&](const TrainState& state) {
      save_checkpoint(checkpoint_path, state, *state.weights);
    }));
    first = trainer.run();
  }
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.state.step, 1235);  // the signal raised during step 1234 stops step 1235
  EXPECT_EQ(first.state.status[0], MemberStatus::interrupted);

  const auto checkpoint = load_checkpoint(checkpoint_path, 2, straight->layer_shapes());
  EXPECT_EQ(checkpoint.state.step, 1235);
  ASSERT_EQ(checkpoint.weights.size(), straight->weights().size());
  auto resumed = fresh();
  {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < checkpoint.weights.size(); ++l)
      resumed->weights()[l].copy_(checkpoint.weights[l]);
  }
  InterruptHandler handler;  // as `ncflab run --resume` does: a fresh handler, no pending signal
  Trainer trainer(resumed, problem.data.inputs, problem.data.labels, LossKind::square, deltas,
                  options);
  trainer.resume_from(checkpoint.state);
  const auto second = trainer.run();
  EXPECT_FALSE(second.interrupted);
  EXPECT_EQ(second.state.status[0], MemberStatus::max_steps);
  EXPECT_EQ(second.state.steps_done[1], 2500);
  EXPECT_TRUE(torch::equal(resumed->flatten(), straight->flatten()));
}

TEST_F(TrainerTest, InterruptedRunResumesToTheSameWeightsBitForBit) {
  SmallProblem problem;
  expect_interrupted_run_to_resume_bit_for_bit(problem, problem.net);
}

TEST_F(TrainerTest, InterruptedSingleLayerRunResumesToTheSameWeightsBitForBit) {
  SmallProblem problem;
  // H = Σ_j max(w_jᵀx, 0)²: the checkpoint holds W1 alone.
  expect_interrupted_run_to_resume_bit_for_bit(problem, {{6}, 0.0, 2, ModelKind::single_layer});
}

TEST_F(TrainerTest, DivergenceIsCaughtWithTheLastGoodWeightsKept) {
  SmallProblem problem;
  // Step 10 on weights of norm 3: the iterates blow up within a few steps.
  auto model = make_model(4, problem.net, 2, 3.0, 2);
  const auto result =
      Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, {3.0, 3.0},
              TrainerOptions().step_size(10).max_steps(1000).escape_radius(1e300))
          .run();
  for (size_t s = 0; s < 2; ++s) {
    EXPECT_EQ(result.state.status[s], MemberStatus::diverged);
    EXPECT_LT(result.state.steps_done[s], 1000);
  }
  EXPECT_TRUE(torch::isfinite(model->flatten()).all().item<bool>());
}

TEST_F(TrainerTest, RejectsBadOptions) {
  SmallProblem problem;
  auto model = make_model(4, problem.net, 2, 0.1, 2);
  EXPECT_THROW(Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, {0.1},
                       TrainerOptions()),
               c10::Error);  // one δ for two members
  EXPECT_THROW(Trainer(model, problem.data.inputs, problem.data.labels, LossKind::square,
                       {0.1, 0.1}, TrainerOptions().step_size(0)),
               c10::Error);
  EXPECT_THROW(
      make_training_engine(EngineKind::fused, model, problem.data.inputs.to(torch::kFloat32),
                           problem.data.labels, LossKind::square),
      c10::Error);  // dtype mismatch
}

TEST_F(TrainerTest, ProgressLinesShowRateLossAndNormOverDelta) {
  SmallProblem problem;
  auto model = make_model(4, problem.net, 1, 0.01, 1);
  std::ostringstream plain;
  std::ostringstream terminal;
  // The hook is called between chunks of 256 steps (the fused engine's default), and reads
  // the clock at most every 64 steps: > 5 draws take > 5 chunks.
  Trainer trainer(model, problem.data.inputs, problem.data.labels, LossKind::square, {0.01},
                  TrainerOptions().step_size(1e-2).max_steps(2000).stop_at_escape(false));
  trainer.add_hook(
      std::make_shared<ProgressHook>(plain, false, std::chrono::duration<double>(0), 2000, 0));
  trainer.add_hook(
      std::make_shared<ProgressHook>(terminal, true, std::chrono::duration<double>(0), 2000, 0));
  trainer.run();
  // Plain: whole lines, one per draw; terminal: redrawn in place with \r, one final newline.
  const std::string lines = plain.str();
  const std::string redrawn = terminal.str();
  EXPECT_THAT(lines, ::testing::HasSubstr("run: step "));
  EXPECT_THAT(lines, ::testing::HasSubstr("steps/s"));
  EXPECT_THAT(lines, ::testing::HasSubstr("||w||/delta 1"));
  EXPECT_EQ(lines.find('\r'), std::string::npos);
  EXPECT_GT(std::count(lines.begin(), lines.end(), '\n'), 5);
  EXPECT_EQ(std::count(redrawn.begin(), redrawn.end(), '\n'), 1);
  EXPECT_GT(std::count(redrawn.begin(), redrawn.end(), '\r'), 5);
}

TEST(TrainerCuda, BatchedEngineOnTheGpuTakesTheCpusSteps_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only LibTorch)";
  torch::manual_seed(3);
  const auto inputs = torch::randn({30, 5}, torch::kFloat64);
  const auto labels = torch::randn({30}, torch::kFloat64);
  const std::vector<double> deltas(4, 0.3);
  // A depth-3 net and the single-layer model (its fixed output row of ones made on the GPU).
  const std::vector<NetCase> nets = {{{8, 6}, 0.2, 2}, {{8}, 0.0, 2, ModelKind::single_layer}};
  for (const auto& net : nets) {
    SCOPED_TRACE(model_kind_name(net.kind));
    auto cpu = make_model(5, net, 4, 0.3, 9);
    auto gpu = copy_of(cpu);
    gpu->to(torch::kCUDA);
    auto options = TrainerOptions().step_size(1e-2).max_steps(200).stop_at_escape(false);
    const auto on_cpu = Trainer(cpu, inputs, labels, LossKind::square, deltas, options).run();
    const auto on_gpu = Trainer(gpu, inputs.to(torch::kCUDA), labels.to(torch::kCUDA),
                                LossKind::square, deltas, options.engine(EngineKind::automatic))
                            .run();
    EXPECT_EQ(on_gpu.engine, EngineKind::batched);
    EXPECT_LT(relative_difference(gpu->flatten().cpu(), cpu->flatten()), 1e-12);
    EXPECT_LT(relative_difference(on_gpu.state.loss, on_cpu.state.loss), 1e-12);
  }
}

}  // namespace
}  // namespace ncflab

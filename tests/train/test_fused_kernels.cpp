// The fused engine's kernels for every instruction set this CPU runs: members interleaved in
// SIMD lanes take the same steps bit for bit as each member alone, whatever the group, lane,
// active set or thread count; every instruction set agrees with the autograd reference to
// 1e-12, for every activation family, depth and loss.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ncflab/core/cpu_isa.h"
#include "ncflab/train/engine.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::NetCase;

std::vector<CpuIsa> available_isas() {
  std::vector<CpuIsa> isas;
  for (const auto isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (cpu_isa_available(isa)) isas.push_back(isa);
  }
  return isas;
}

FeedForward kernel_model_copy(const FeedForward& model) {
  return FeedForward(std::dynamic_pointer_cast<FeedForwardImpl>(model->clone()));
}

double kernel_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

struct Problem {
  torch::Tensor inputs;
  torch::Tensor labels;
  LossKind loss;
};

Problem make_problem(LossKind loss, torch::Dtype dtype) {
  torch::manual_seed(3);
  const auto inputs = torch::randn({11, 4}, torch::kFloat64);
  auto labels = torch::randn({11}, torch::kFloat64);
  if (loss == LossKind::logistic) labels = torch::where(labels >= 0, 1.0, -1.0);
  return {inputs.to(dtype), labels.to(torch::kFloat64).to(dtype), loss};
}

// 19 members: groups of 8, 4 or 2 lanes with a partial group left over on every
// instruction set (run member by member or interleaved, depending on its size).
constexpr int64_t kMembers = 19;

FeedForward make_ensemble(const NetCase& net, torch::Dtype dtype) {
  return FeedForward(testing::model_options(net, 4)
                         .members(kMembers)
                         .init_scale(0.7)  // outputs O(1): every term of the gradient matters
                         .seed(5)
                         .dtype(dtype));
}

// Member s of `ensemble` as a model of its own.
FeedForward member_of(const FeedForward& ensemble, const NetCase& net, int64_t s) {
  auto single = FeedForward(testing::model_options(net, 4).members(1).seed(0).dtype(
      ensemble->weights().front().scalar_type()));
  single->load_flat(ensemble->flatten().detach().narrow(0, s, 1));
  return single;
}

class FusedKernels : public ::testing::TestWithParam<NetCase> {};

TEST_P(FusedKernels, LanesEqualEachMemberAloneBitForBit) {
  const auto& net = GetParam();
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const auto loss : {LossKind::square, LossKind::logistic}) {
      const auto problem = make_problem(loss, dtype);
      for (const auto isa : available_isas()) {
        SCOPED_TRACE(std::string(cpu_isa_name(isa)) + " " + loss_name(loss) +
                     (dtype == torch::kFloat32 ? " float32" : " float64"));
        auto ensemble = make_ensemble(net, dtype);
        std::vector<FeedForward> singles;
        std::vector<std::unique_ptr<TrainingEngine>> single_engines;
        for (int64_t s = 0; s < kMembers; ++s) {
          singles.push_back(member_of(ensemble, net, s));
          single_engines.push_back(
              make_fused_engine(singles.back(), problem.inputs, problem.labels, problem.loss, isa));
        }
        auto engine = make_fused_engine(ensemble, problem.inputs, problem.labels, loss, isa);
        // Members 4 and 11 frozen for the first steps: groups form from the active ones.
        std::vector<uint8_t> active(kMembers, 1);
        active[4] = active[11] = 0;
        for (int step = 0; step < 4; ++step) {
          if (step == 2) active.assign(kMembers, 1);
          StepStatistics together;
          engine->evaluate(active, together);
          for (int64_t s = 0; s < kMembers; ++s) {
            if (!active[static_cast<size_t>(s)]) continue;
            StepStatistics alone;
            single_engines[static_cast<size_t>(s)]->evaluate({1}, alone);
            const auto index = static_cast<size_t>(s);
            ASSERT_EQ(alone.loss[0], together.loss[index]) << "member " << s << " step " << step;
            ASSERT_EQ(alone.norm[0], together.norm[index]);
            ASSERT_EQ(alone.gradient_norm[0], together.gradient_norm[index]);
            for (size_t l = 0; l < engine->gradients().size(); ++l) {
              ASSERT_TRUE(
                  torch::equal(single_engines[index]->gradients()[l][0], engine->gradients()[l][s]))
                  << "member " << s << " layer " << l + 1 << " step " << step;
            }
            single_engines[index]->update(1e-2, {1});
          }
          engine->update(1e-2, active);
        }
        for (int64_t s = 0; s < kMembers; ++s) {
          EXPECT_TRUE(torch::equal(singles[static_cast<size_t>(s)]->flatten().detach()[0],
                                   ensemble->flatten().detach()[s]));
        }
      }
    }
  }
}

TEST_P(FusedKernels, EveryInstructionSetAgreesWithAutograd) {
  const auto& net = GetParam();
  for (const auto loss : {LossKind::square, LossKind::logistic}) {
    const auto problem = make_problem(loss, torch::kFloat64);
    const auto reference_model = make_ensemble(net, torch::kFloat64);
    auto autograd_model = kernel_model_copy(reference_model);
    auto reference = make_training_engine(EngineKind::autograd, autograd_model, problem.inputs,
                                          problem.labels, loss);
    const std::vector<uint8_t> active(kMembers, 1);
    StepStatistics expected;
    reference->evaluate(active, expected);
    for (const auto isa : available_isas()) {
      SCOPED_TRACE(std::string(cpu_isa_name(isa)) + " " + loss_name(loss));
      auto model = kernel_model_copy(reference_model);
      auto engine = make_fused_engine(model, problem.inputs, problem.labels, loss, isa);
      StepStatistics got;
      engine->evaluate(active, got);
      const auto as_tensor = [](const std::vector<double>& v) {
        return torch::tensor(v, torch::kFloat64);
      };
      EXPECT_LT(kernel_relative_difference(as_tensor(got.loss), as_tensor(expected.loss)), 1e-12);
      EXPECT_LT(kernel_relative_difference(as_tensor(got.gradient_norm),
                                           as_tensor(expected.gradient_norm)),
                1e-12);
      for (size_t l = 0; l < engine->gradients().size(); ++l) {
        EXPECT_LT(kernel_relative_difference(engine->gradients()[l], reference->gradients()[l]),
                  1e-12)
            << "layer " << l + 1;
      }
    }
  }
}

// Chunks of steps keep a group's members in the kernel's lanes from step to step: the same
// weights and gradients bit for bit as evaluate and update step by step, on every
// instruction set and in both dtypes, a frozen member left untouched.
TEST_P(FusedKernels, StepChunksEqualStepByStepBitForBit) {
  const auto& net = GetParam();
  const StepRule rule{1e-2, 1e300, false};
  constexpr int64_t kSteps = 6;
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const auto problem = make_problem(LossKind::logistic, dtype);
    const auto reference_model = make_ensemble(net, dtype);
    std::vector<uint8_t> active(kMembers, 1);
    active[3] = 0;
    for (const auto isa : available_isas()) {
      SCOPED_TRACE(std::string(cpu_isa_name(isa)) + (dtype == torch::kFloat32 ? " float32" : ""));
      auto stepped_model = kernel_model_copy(reference_model);
      auto chunked_model = kernel_model_copy(reference_model);
      auto stepped =
          make_fused_engine(stepped_model, problem.inputs, problem.labels, problem.loss, isa);
      auto chunked =
          make_fused_engine(chunked_model, problem.inputs, problem.labels, problem.loss, isa);
      StepStatistics statistics;
      stepped->evaluate(active, statistics);
      for (int64_t k = 0; k < kSteps; ++k) {
        stepped->update(rule.step_size, active);
        if (k + 1 < kSteps) stepped->evaluate(active, statistics);
      }
      chunked->evaluate(active, statistics);
      const auto chunk =
          chunked->run_steps(rule, 0, kSteps, active, std::vector<uint8_t>(kMembers, 0));
      EXPECT_TRUE(std::all_of(chunk.finish_step.begin(), chunk.finish_step.end(),
                              [](int64_t step) { return step < 0; }));
      EXPECT_TRUE(torch::equal(chunked_model->flatten(), stepped_model->flatten()));
      EXPECT_TRUE(torch::equal(chunked_model->flatten()[3], reference_model->flatten()[3]));
      EXPECT_FALSE(torch::equal(chunked_model->flatten()[4], reference_model->flatten()[4]));
      for (size_t l = 0; l < stepped->gradients().size(); ++l) {
        for (int64_t s = 0; s < kMembers; ++s) {
          if (!active[static_cast<size_t>(s)]) continue;
          EXPECT_TRUE(torch::equal(chunked->gradients()[l][s], stepped->gradients()[l][s]))
              << "layer " << l + 1 << " member " << s;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedKernels, ::testing::ValuesIn(testing::net_cases()),
                         testing::case_name);

TEST(FusedKernelsThreads, ResultsDoNotDependOnTheThreadCount) {
  const NetCase net{{12, 12}, 0.2, 1};
  const auto problem = make_problem(LossKind::square, torch::kFloat64);
  const int threads_before = at::get_num_threads();
  std::vector<torch::Tensor> gradients;
  for (const int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    auto model = make_ensemble(net, torch::kFloat64);
    auto engine = make_training_engine(EngineKind::fused, model, problem.inputs, problem.labels,
                                       problem.loss);
    StepStatistics statistics;
    engine->evaluate(std::vector<uint8_t>(kMembers, 1), statistics);
    gradients.push_back(engine->gradients().front().clone());
  }
  at::set_num_threads(threads_before);
  EXPECT_TRUE(torch::equal(gradients[0], gradients[1]));
  EXPECT_TRUE(torch::equal(gradients[0], gradients[2]));
}

TEST(FusedKernelsThreads, AnUnavailableInstructionSetIsRefused) {
  for (const auto isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (cpu_isa_available(isa)) continue;
    const NetCase net{{3}, 0.2, 1};
    const auto problem = make_problem(LossKind::square, torch::kFloat64);
    auto model = make_ensemble(net, torch::kFloat64);
    EXPECT_THROW(make_fused_engine(model, problem.inputs, problem.labels, problem.loss, isa),
                 c10::Error);
  }
  EXPECT_TRUE(cpu_isa_available(CpuIsa::generic));
  EXPECT_TRUE(cpu_isa_available(active_cpu_isa()));
}

}  // namespace
}  // namespace ncflab

// Problem: each config section maps onto its component's options in one place, and the
// weights of a run (or a batch of runs) are drawn once, exactly δ·w0.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "ncflab/experiment/problem.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/ncf/ncf.h"
#include "support.h"

namespace ncflab {
namespace {

// A small problem: `model` and `data` replace the default sections, `extra` adds keys.
Config small_config(const std::string& extra = "", const std::string& model = "{widths: [4]}",
                    const std::string& data = "{n: 12, d: 3}") {
  return parse_config("name: mapped\nseed: 5\ndata: " + data + "\nmodel: " + model + "\n" + extra,
                      "exp.yaml");
}

TEST(Problem, ModelOptionsCarryEveryModelKeyAndTheRunsEnsemble) {
  const Config config =
      small_config("init: {scale: 0.05}\nensemble: {seeds: 3}\ndtype: float32\n",
                   "{kind: feedforward, widths: [4, 3], activation: {alpha: -0.5, p: 3}}");
  const auto options = model_options(config, 7);
  EXPECT_EQ(options.input_dim(), 7);
  EXPECT_EQ(options.widths(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(options.kind(), ModelKind::feedforward);
  EXPECT_EQ(options.activation().alpha(), -0.5);
  EXPECT_EQ(options.activation().p(), 3);
  EXPECT_EQ(options.members(), 3);
  EXPECT_EQ(options.init_scale(), 0.05);
  EXPECT_EQ(options.seed(), 5u);
  EXPECT_EQ(options.dtype(), torch::kFloat32);
  EXPECT_TRUE(options.member_init_scales().empty());
  EXPECT_TRUE(options.member_seeds().empty());
}

TEST(Problem, SyntheticDataOptionsAreTheDataSectionWithTheTeachersActivationAndSeed) {
  const Config config = small_config(
      "", "{widths: [4], activation: {alpha: 0.3, p: 1}}",
      "{n: 9, d: 2, inputs: sphere, teacher: two_layer, teacher_width: 4, label_noise: 0.5,"
      " sign_labels: true}");
  const auto options = synthetic_data_options(config);
  EXPECT_EQ(options.n(), 9);
  EXPECT_EQ(options.d(), 2);
  EXPECT_EQ(options.inputs(), InputDistribution::sphere);
  EXPECT_EQ(options.teacher(), TeacherKind::two_layer);
  EXPECT_EQ(options.teacher_width(), 4);
  EXPECT_EQ(options.label_noise(), 0.5);
  EXPECT_TRUE(options.sign_labels());
  EXPECT_EQ(options.teacher_activation().alpha(), 0.3);
  EXPECT_EQ(options.teacher_activation().p(), 1);
  EXPECT_EQ(options.seed(), 5u);
}

TEST(Problem, DefaultThreadsFollowOmpNumThreadsWhereItIsSet) {
  const char* saved = std::getenv("OMP_NUM_THREADS");
  const std::string restore = saved ? saved : "";
  const auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  ::setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(default_threads(), 3);
  for (const char* bad : {"", "0", "-2", "two", "4x"}) {
    ::setenv("OMP_NUM_THREADS", bad, 1);
    EXPECT_EQ(default_threads(), cores) << "OMP_NUM_THREADS='" << bad << "'";
  }
  ::unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(default_threads(), cores);
  if (saved) ::setenv("OMP_NUM_THREADS", restore.c_str(), 1);
}

TEST(Problem, KktSearchOptionsAreTheKktSectionSeededByTheConfig) {
  const Config config =
      small_config("kkt: {restarts: 7, tol: 1.0e-9, max_iterations: 11, kink_tol: 1.0e-5}\n");
  const auto options = kkt_search_options(config);
  EXPECT_EQ(options.restarts(), 7);
  EXPECT_EQ(options.tol(), 1.0e-9);
  EXPECT_EQ(options.max_iterations(), 11);
  EXPECT_EQ(options.kink_tol(), 1.0e-5);
  EXPECT_EQ(options.seed(), 5u);
}

TEST(Problem, WeightsAreDeltaTimesTheDirectionsDrawnOnce) {
  const Config config = small_config("init: {scale: 0.01}\nensemble: {seeds: 2}\n");
  const Problem problem = build_problem(config);
  const auto& model = *problem.model;
  const auto w0 = model.initial_directions();
  // Drawn from the seeds' own streams, member s from seed + s: exactly what an
  // independent draw gives, and of unit norm.
  EXPECT_TRUE(torch::equal(w0, unit_gaussian_directions({5, 6}, model.parameters_per_member())));
  EXPECT_TRUE(torch::allclose(w0.norm(2, 1), torch::ones({2}, torch::kFloat64), 0, 1e-15));
  EXPECT_TRUE(torch::equal(model.flatten(), w0 * 0.01));
}

TEST(Problem, ABatchGivesEachMemberItsOwnDeltaAndSeed) {
  const Config config = small_config();
  // Two runs of two members that share seeds 5 and 6 but not δ (a δ sweep).
  const EnsembleInit members{{0.1, 0.1, 1e-3, 1e-3}, {5, 6, 5, 6}};
  const Problem problem = build_problem(config, members);
  const auto& model = *problem.model;
  ASSERT_EQ(model.members(), 4);
  const auto w0 = model.initial_directions();
  EXPECT_TRUE(torch::equal(w0[0], w0[2]));
  EXPECT_TRUE(torch::equal(w0[1], w0[3]));
  EXPECT_FALSE(torch::equal(w0[0], w0[1]));
  const auto deltas = torch::tensor(members.deltas, torch::kFloat64).unsqueeze(1);
  EXPECT_TRUE(torch::equal(model.flatten(), w0 * deltas));
  // The same members as a run of their own draw the same w0.
  const Problem alone = build_problem(small_config("ensemble: {seeds: 2}\n"));
  EXPECT_TRUE(torch::equal(alone.model->initial_directions(), w0.narrow(0, 0, 2)));
}

TEST(Problem, MemoryEstimateCountsEveryParameterAndActivation) {
  // d = 3, widths [4, 5]: P = 3·4 + 4·5 + 5 = 37 per member, 9 hidden units per sample.
  const Config config = small_config("", "{widths: [4, 5]}");
  const auto one = estimate_memory(config, 10, 3, 1);
  const auto eight = estimate_memory(config, 10, 3, 8);
  EXPECT_DOUBLE_EQ(static_cast<double>(one.weights), 37.0 * 8 * 12);
  EXPECT_DOUBLE_EQ(static_cast<double>(one.activations), 10.0 * 9 * 8 * 4);
  EXPECT_DOUBLE_EQ(static_cast<double>(eight.weights), 8 * static_cast<double>(one.weights));
  EXPECT_DOUBLE_EQ(static_cast<double>(eight.data), static_cast<double>(one.data));
}

TEST(Problem, RefusesWhatCannotFitBeforeAllocating) {
  // 1e8 × 1e8 weights (8e16 bytes): refused by the estimate, not by the allocator.
  const Config config = small_config("", "{widths: [100000000, 100000000]}");
  try {
    build_problem(config);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("model.widths: expected a problem "
                                                            "that fits in memory"));
  }
}

}  // namespace
}  // namespace ncflab

// The NCF gradient flow: closed-form blow-up on a KKT ray, closed-form collapse, the
// per-layer conservation laws, ensemble = separate runs, bad input, and L = 2 escape (two-layer
// Leaky ReLU and the single-layer ReLU² model).
#include <cmath>

#include "ncflab/ncf/flow.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::SeededTest;

// H(x) = v·max(w·x, 0)² with one hidden unit, x = (1, 0): N(u) = ȳ·v·max(w1, 0)², u = (w1, w2, v).
Ncf single_relu_squared(double ybar) {
  return Ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
             torch::tensor({{1.0, 0.0}}, torch::kFloat64), torch::tensor({ybar}, torch::kFloat64));
}

// Random 3-layer net with p = 2 (q = (4, 2, 1), L = 7) on n = 20 random points in d = 5.
Ncf random_deep_net() {
  return Ncf(FeedForwardOptions(5, {4, 3}).activation(PolyLeakyReLUOptions().alpha(0.2).p(2)),
             torch::randn({20, 5}, torch::kFloat64), torch::randn({20}, torch::kFloat64));
}

// Random rows of norm `norm` with N(u0) > 0: N is linear in W_K (degree 1), so flipping
// the last layer of a member flips the sign of its N.
torch::Tensor positive_start(const Ncf& ncf, int64_t members, double norm) {
  auto u = norm * unit_rows(torch::randn({members, ncf.parameters()}, torch::kFloat64));
  const auto last = ncf.layer_shapes().back();
  const int64_t output_weights = last[0] * last[1];
  const auto sign = ncf.value(u).sign().unsqueeze(1);
  auto tail = u.narrow(1, ncf.parameters() - output_weights, output_weights);
  tail.mul_(sign);
  return u;
}

double relative_error(double got, double expected) {
  return std::abs(got - expected) / std::abs(expected);
}

TEST(NcfFlow, BlowsUpAlongAKktRayAtTheClosedFormTime) {
  const auto ncf = single_relu_squared(1.0);
  ASSERT_EQ(ncf.total_degree(), 3);
  // Balance ‖W_l‖² = q_l/L with q = (2, 1): w = (√(2/3), 0), v = √(1/3); N* = (2/3)·√(1/3).
  const auto kkt = torch::tensor({std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}, torch::kFloat64);
  const double ncf_star = 2.0 / 3 * std::sqrt(1.0 / 3);
  const std::vector<double> radii = {1e-2, 0.3};
  const auto u0 = torch::stack({radii[0] * kkt, radii[1] * kkt});
  const auto result = integrate_ncf_flow(ncf, u0, FlowOptions());
  ASSERT_EQ(result.members.size(), 2u);
  EXPECT_EQ(result.total_degree, 3);
  for (size_t s = 0; s < radii.size(); ++s) {
    const auto& m = result.members[s];
    // On the ray dr/dt = L·N*·r^(L−1), so T* = r0^(2−L)/((L−2)·L·N*).
    const double expected = std::pow(radii[s], -1.0) / (1.0 * 3 * ncf_star);
    EXPECT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
    EXPECT_LT(relative_error(m.blowup_time, expected), 1e-6)
        << "r0=" << radii[s] << " T*=" << m.blowup_time << " expected " << expected;
    // The escape (‖u‖ = max_norm) comes just before T*: t_esc = T* − max_norm^(2−L)/((L−2)·L·N*).
    EXPECT_LT(relative_error(m.escape_time, expected - 1e-4 / (3 * ncf_star)), 1e-6);
    EXPECT_GE(m.norm, 1e4);
    EXPECT_LE(m.escape_time, m.time);
    EXPECT_LT((result.direction[static_cast<int64_t>(s)] - kkt).abs().max().item<double>(), 1e-8);
    EXPECT_NEAR(m.ncf, ncf_star, 1e-8);
    EXPECT_LT(m.residual, 1e-8);
    // Trajectory: starts at (0, r0), ends at the final state, one row per record_every steps.
    ASSERT_GE(m.trajectory.size(), 2u);
    EXPECT_EQ(m.trajectory.front().time, 0.0);
    EXPECT_NEAR(m.trajectory.front().norm, radii[s], 1e-15);
    EXPECT_EQ(m.trajectory.back().time, m.time);
    EXPECT_EQ(m.trajectory.back().norm, m.norm);
    EXPECT_EQ(static_cast<int64_t>(m.trajectory.size()),
              m.accepted / 10 + 1 + (m.accepted % 10 != 0 ? 1 : 0));
    for (size_t i = 1; i < m.trajectory.size(); ++i) {
      EXPECT_GT(m.trajectory[i].time, m.trajectory[i - 1].time);
    }
  }
}

TEST(NcfFlow, SamplesFollowTheClosedFormRayAndLeaveTheStepsAlone) {
  const auto ncf = single_relu_squared(1.0);
  const auto kkt = torch::tensor({std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}, torch::kFloat64);
  const double ncf_star = 2.0 / 3 * std::sqrt(1.0 / 3);
  const double r0 = 0.1;
  const auto u0 = (r0 * kkt).unsqueeze(0);
  // On the ray dr/dt = 3N*·r², so r(t) = r0/(1 − 3N*·r0·t) and T* = 1/(3N*·r0).
  const double blowup = 1.0 / (3 * ncf_star * r0);
  std::vector<double> times;
  for (int j = 0; j < 20; ++j) times.push_back(blowup * j / 20.0);
  times.push_back(2 * blowup);  // past the end of the flow: NaN
  const auto plain = integrate_ncf_flow(ncf, u0, FlowOptions().rtol(1e-13));
  const auto sampled = integrate_ncf_flow(ncf, u0, FlowOptions().rtol(1e-13).sample_times({times}));
  const auto& m = sampled.members[0];
  EXPECT_EQ(m.accepted, plain.members[0].accepted);
  EXPECT_EQ(m.rejected, plain.members[0].rejected);
  EXPECT_EQ(m.blowup_time, plain.members[0].blowup_time);
  ASSERT_EQ(m.samples.size(0), static_cast<int64_t>(times.size()));
  for (size_t j = 0; j + 1 < times.size(); ++j) {
    const double radius = r0 / (1 - 3 * ncf_star * r0 * times[j]);
    const auto expected = radius * kkt;
    const auto got = m.samples[static_cast<int64_t>(j)];
    EXPECT_LT(((got - expected).norm() / expected.norm()).item<double>(), 1e-8)
        << "t = " << times[j];
  }
  EXPECT_TRUE(torch::isnan(m.samples[static_cast<int64_t>(times.size()) - 1]).all().item<bool>());
}

TEST(NcfFlow, CollapsesToTheNormFixedByItsConservationLaw) {
  // ȳ = −1: N = −v·max(w1, 0)² < 0. d(v²)/dt = 2N and d(w1²)/dt = 4N, so v² − w1²/2 is
  // conserved; v stays positive, w1 → 0, and ‖u‖ → sqrt(b² − a²/2).
  const auto ncf = single_relu_squared(-1.0);
  const double a = 0.3;
  const double b = 0.4;
  const auto result =
      integrate_ncf_flow(ncf, torch::tensor({{a, 0.0, b}}, torch::kFloat64), FlowOptions());
  const auto& m = result.members[0];
  EXPECT_EQ(m.status, FlowStatus::collapsed) << flow_status_name(m.status);
  EXPECT_LE(m.ncf, 0.0);
  EXPECT_TRUE(std::isnan(m.blowup_time));
  EXPECT_TRUE(std::isnan(m.escape_time));
  EXPECT_LT(relative_error(m.norm, std::sqrt(b * b - a * a / 2)), 1e-6) << "norm " << m.norm;
}

// ‖W_l‖²/q_l per layer, [S, K].
torch::Tensor scaled_layer_norms(const Ncf& ncf, const torch::Tensor& u) {
  std::vector<torch::Tensor> norms;
  const auto layers = ncf.layers(u);
  for (size_t l = 0; l < layers.size(); ++l) {
    norms.push_back(layers[l].square().sum({1, 2}) / static_cast<double>(ncf.degrees()[l]));
  }
  return torch::stack(norms, 1);
}

class NcfFlowRandom : public SeededTest {};

TEST_F(NcfFlowRandom, KeepsTheLayerBalanceDifferencesConstant) {
  // d‖W_l‖²/dt = 2⟨∇_{W_l}N, W_l⟩ = 2·q_l·N (Euler per layer), so ‖W_l‖²/q_l − ‖W_{l+1}‖²/q_{l+1}
  // is constant. Stop at ‖u‖ = 1: past it the O(‖u‖²) terms would swamp the O(‖u0‖²)
  // differences in float64 rounding alone.
  const auto ncf = random_deep_net();
  ASSERT_EQ(ncf.total_degree(), 7);
  const double initial_norm = 0.1;
  const auto u0 = positive_start(ncf, 3, initial_norm);
  const auto options = FlowOptions().max_norm(1.0);
  const auto result = integrate_ncf_flow(ncf, u0, options);
  std::vector<torch::Tensor> finals;
  for (size_t s = 0; s < result.members.size(); ++s) {
    const auto& m = result.members[s];
    EXPECT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
    // At blow-up the direction is taken where ‖u‖ crossed max_norm (interpolated).
    finals.push_back(options.max_norm() * result.direction[static_cast<int64_t>(s)]);
  }
  const auto before = scaled_layer_norms(ncf, u0);
  const auto after = scaled_layer_norms(ncf, torch::stack(finals));
  const auto drift =
      ((after.diff(1, 1) - before.diff(1, 1)).abs().max() / (initial_norm * initial_norm))
          .item<double>();
  EXPECT_LT(drift, 1e-8);
  // The norms themselves grew a lot: the check is not trivially true.
  EXPECT_GT((after - before).abs().min().item<double>(), 1e-2);
}

TEST_F(NcfFlowRandom, EnsembleMembersMatchSeparateRuns) {
  const auto ncf = random_deep_net();
  const auto u0 = positive_start(ncf, 3, 0.5);
  // Members take different step sequences; max_norm = 100 keeps the test quick.
  const auto options = FlowOptions().max_norm(100.0);
  const auto together = integrate_ncf_flow(ncf, u0, options);
  for (int64_t s = 0; s < u0.size(0); ++s) {
    const auto alone = integrate_ncf_flow(ncf, u0.narrow(0, s, 1), options);
    const auto& a = alone.members[0];
    const auto& t = together.members[static_cast<size_t>(s)];
    EXPECT_EQ(t.status, FlowStatus::blew_up) << flow_status_name(t.status);
    EXPECT_EQ(a.status, t.status);
    EXPECT_LT(relative_error(t.blowup_time, a.blowup_time), 1e-9)
        << "member " << s << ": " << t.blowup_time << " vs " << a.blowup_time;
    EXPECT_LT((together.direction[s] - alone.direction[0]).abs().max().item<double>(), 1e-9);
  }
}

TEST_F(NcfFlowRandom, BlowUpDirectionIsTheMaxNormCrossingWhateverTheStepSizes) {
  // L = 3: at ‖u‖ = max_norm the direction still turns (residual ~1e-3), so the end of the
  // last step, which overshoots max_norm by a step-size dependent amount, is no reference.
  const auto ncf =
      Ncf(FeedForwardOptions(5, {6}).activation(PolyLeakyReLUOptions().alpha(0.2).p(2)),
          torch::randn({30, 5}, torch::kFloat64), torch::randn({30}, torch::kFloat64));
  const auto u0 = positive_start(ncf, 1, 1.0);
  const auto options = FlowOptions().max_norm(1e3).rtol(1e-12);
  const auto plain = integrate_ncf_flow(ncf, u0, options);
  const auto& first = plain.members[0];
  ASSERT_EQ(first.status, FlowStatus::blew_up) << flow_status_name(first.status);
  // A tighter tolerance gives a different sequence of steps and a different overshoot.
  const auto sampled = integrate_ncf_flow(ncf, u0, FlowOptions(options).rtol(1e-13));
  const auto& second = sampled.members[0];
  ASSERT_EQ(second.status, FlowStatus::blew_up);
  // The ends of the last steps differ, and so does N there, by far more than at the crossing.
  EXPECT_GT(std::abs(second.norm - first.norm), 1e-5 * options.max_norm());
  const double end_difference =
      std::abs(second.trajectory.back().ncf - first.trajectory.back().ncf);
  EXPECT_GT(end_difference, 1e4 * std::abs(second.ncf - first.ncf));
  EXPECT_GT(first.residual, 1e-5) << "the direction should still be turning at max_norm";
  EXPECT_LT((plain.direction[0] - sampled.direction[0]).norm().item<double>(), 1e-9);
  EXPECT_LT(relative_error(second.blowup_time, first.blowup_time), 1e-9);
  EXPECT_LT(relative_error(second.ncf, first.ncf), 1e-10);
}

TEST_F(NcfFlowRandom, RejectsBadInput) {
  const auto ncf = random_deep_net();
  const int64_t parameters = ncf.parameters();
  auto good = torch::randn({2, parameters}, torch::kFloat64);
  EXPECT_THROW(
      integrate_ncf_flow(ncf, torch::randn({2, parameters + 1}, torch::kFloat64), FlowOptions()),
      c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, torch::randn({parameters}, torch::kFloat64), FlowOptions()),
               c10::Error);
  auto zero_row = good.clone();
  zero_row[1].zero_();
  EXPECT_THROW(integrate_ncf_flow(ncf, zero_row, FlowOptions()), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().rtol(-1)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().max_norm(0)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().record_every(0)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().collapse_norm_ratio(1)), c10::Error);
}

TEST_F(NcfFlowRandom, TwoHomogeneousNetsEscapeWithoutFiniteBlowUp) {
  // L = 2 (two-layer Leaky ReLU): the norm grows exponentially, never in finite time.
  const auto ncf = Ncf(FeedForwardOptions(4, {5}).activation(PolyLeakyReLUOptions().alpha(0.3)),
                       torch::randn({10, 4}, torch::kFloat64), torch::randn({10}, torch::kFloat64));
  ASSERT_EQ(ncf.total_degree(), 2);
  const auto result = integrate_ncf_flow(ncf, positive_start(ncf, 2, 1.0), FlowOptions());
  for (const auto& m : result.members) {
    EXPECT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
    EXPECT_TRUE(std::isnan(m.blowup_time));
    EXPECT_TRUE(std::isfinite(m.escape_time));
    EXPECT_GT(m.escape_time, 0.0);
    EXPECT_LE(m.escape_time, m.time);
  }
}

TEST(NcfFlow, TwoHomogeneousEscapeTimeMatchesTheExponentialClosedForm) {
  // One Leaky ReLU unit, x = (1, 0), ȳ = 1: N = v·w1 for w1 > 0, so dw1/dt = v, dv/dt = w1
  // and u0 = (a, 0, a) grows as a·e^t·(1, 0, 1): ‖u‖ = max_norm at t = ln(max_norm/(a√2)).
  const auto ncf =
      Ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0.3)),
          torch::tensor({{1.0, 0.0}}, torch::kFloat64), torch::tensor({1.0}, torch::kFloat64));
  const double a = 0.05;
  const auto result =
      integrate_ncf_flow(ncf, torch::tensor({{a, 0.0, a}}, torch::kFloat64), FlowOptions());
  const auto& m = result.members[0];
  EXPECT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
  EXPECT_TRUE(std::isnan(m.blowup_time));
  const double expected = std::log(1e4 / (a * std::sqrt(2.0)));
  EXPECT_LT(relative_error(m.escape_time, expected), 1e-8) << m.escape_time << " vs " << expected;
}

TEST(NcfFlow, SingleLayerReluSquaredEscapesAlongAKktRayAtTheExponentialRate) {
  // H = Σ_j max(w_jᵀx, 0)² (L = 2) on x1 = (2, 1), x2 = (1, 2), x3 = (−1, −3), ȳ = (1, 1, 2).
  // Along b = (1, 1)/√2, x1 and x2 are active and x3 is not: ∇_{w_j}N = 2·(x1x1ᵀ + x2x2ᵀ)w_j
  // = 18·w_j for w_j ∥ b, so û* with units c_j·b, Σ c_j² = 1, is a KKT point, N(û*) = 9.
  // On the ray u = r·û*: dr/dt = L·N*·r^(L−1) = 18·r, r = r0·e^(18t), no finite blow-up:
  // ‖u‖ = max_norm at t = ln(max_norm/r0)/(2·N*).
  const Ncf ncf(FeedForwardOptions(2, {3})
                    .kind(ModelKind::single_layer)
                    .activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{2.0, 1.0}, {1.0, 2.0}, {-1.0, -3.0}}, torch::kFloat64),
                torch::tensor({1.0, 1.0, 2.0}, torch::kFloat64));
  ASSERT_EQ(ncf.total_degree(), 2);
  const double c = 1 / std::sqrt(2.0);
  const auto kkt = torch::tensor({0.6 * c, 0.6 * c, 0.0, 0.0, 0.8 * c, 0.8 * c}, torch::kFloat64);
  const double ncf_star = 9;
  EXPECT_NEAR(ncf.value(kkt.unsqueeze(0)).item<double>(), ncf_star, 1e-13);
  EXPECT_LT(ncf.smooth_residual(kkt.unsqueeze(0)).item<double>(), 1e-15);
  const std::vector<double> radii = {1e-2, 0.5};
  const auto result = integrate_ncf_flow(ncf, torch::stack({radii[0] * kkt, radii[1] * kkt}),
                                         FlowOptions().max_norm(1e4));
  for (size_t s = 0; s < radii.size(); ++s) {
    const auto& m = result.members[s];
    EXPECT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
    EXPECT_TRUE(std::isnan(m.blowup_time));  // L = 2: T* does not exist
    const double expected = std::log(1e4 / radii[s]) / (2 * ncf_star);
    EXPECT_LT(relative_error(m.escape_time, expected), 1e-8) << m.escape_time << " vs " << expected;
    EXPECT_LT((result.direction[static_cast<int64_t>(s)] - kkt).abs().max().item<double>(), 1e-10);
    EXPECT_NEAR(m.ncf, ncf_star, 1e-9);
  }
}

TEST(NcfFlow, StopsAtMaxTimeAndReportsProgress) {
  const auto ncf = single_relu_squared(1.0);
  const auto kkt = torch::tensor({{std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}}, torch::kFloat64);
  // From r0 = 1e-2 the blow-up is at T* ≈ 86.6; stop at t = 10 on the ray instead, where
  // r(t) = r0/(1 − L·N*·r0·t) in closed form.
  int64_t calls = 0;
  const auto result = integrate_ncf_flow(ncf, 1e-2 * kkt, FlowOptions().max_time(10.0).rtol(1e-10),
                                         [&](const FlowProgress& p) {
                                           ++calls;
                                           EXPECT_GE(p.active, 0);
                                           EXPECT_LE(p.time, 10.0);
                                         });
  const auto& m = result.members[0];
  EXPECT_EQ(m.status, FlowStatus::max_time) << flow_status_name(m.status);
  EXPECT_EQ(m.time, 10.0);
  const double ncf_star = 2.0 / 3 * std::sqrt(1.0 / 3);
  EXPECT_LT(relative_error(m.norm, 1e-2 / (1 - 3 * ncf_star * 1e-2 * 10.0)), 1e-6);
  EXPECT_EQ(calls, (m.accepted + m.rejected) / 20);  // one call every 20 batched steps
}

}  // namespace
}  // namespace ncflab

// The NCF gradient flow: closed-form blow-up on a KKT ray and at every degree L = 3…9,
// closed-form stall, collapse to a negative KKT point, the per-layer conservation laws,
// stopping options that leave T* alone, ensemble = separate runs, bad input, and L = 2
// escape (two-layer Leaky ReLU and the single-layer ReLU² model).
#include <cmath>

#include "ncflab/ncf/flow.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::relative_error;

using testing::gauss_legendre;
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
    EXPECT_LT(relative_error(m.blowup_time, expected), 1e-10)
        << "r0=" << radii[s] << " T*=" << m.blowup_time << " expected " << expected;
    // T* is the integral itself: what is left past the last step is below one ulp.
    EXPECT_LT(relative_error(m.time, m.blowup_time), 1e-15);
    // The escape (‖u‖ = max_norm) comes just before T*: t_esc = T* − max_norm^(2−L)/((L−2)·L·N*).
    EXPECT_LT(relative_error(m.escape_time, expected - 1e-4 / (3 * ncf_star)), 1e-10);
    EXPECT_GT(m.norm, 1e4);
    EXPECT_NEAR(m.log_norm, std::log(m.norm), 1e-12 * m.log_norm);
    EXPECT_LT((result.direction[static_cast<int64_t>(s)] - kkt).abs().max().item<double>(), 1e-10);
    EXPECT_NEAR(m.ncf, ncf_star, 1e-12);
    EXPECT_LE(m.residual, 1e-10);
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

TEST(NcfFlow, BlowUpTimeMatchesTheClosedFormAtEveryDegree) {
  // H(x) = v·σ(w·x) with one unit, x = 1, ȳ = 1, α = 1 (σ(z) = sgn(z)|z|^p): N = v·w^p for
  // w > 0, L = p + 1. dw/dt = p·v·w^(p−1), dv/dt = w^p conserve c = w² − p·v², so
  // T* = ∫_{v0}^∞ (c + p·v²)^(−p/2) dv = w0^(2−p)/√p·∫_0^1 τ^(p−2)/√(w0² − c·τ²) dτ
  // (v as a function of w, then w = w0/τ): a smooth integrand, quadrature to 1e-15.
  // At L ≥ 6 the old max_norm extrapolation gave NaN (SPEC §1).
  const double w0 = 0.8;
  const double v0 = 0.6;
  const auto rule = gauss_legendre(48);
  for (int64_t p = 2; p <= 8; ++p) {
    const Ncf ncf(FeedForwardOptions(1, {1}).activation(PolyLeakyReLUOptions().alpha(1).p(p)),
                  torch::ones({1, 1}, torch::kFloat64), torch::ones({1}, torch::kFloat64));
    ASSERT_EQ(ncf.total_degree(), p + 1);
    const double c = w0 * w0 - p * v0 * v0;
    double integral = 0;
    for (const auto& [tau, weight] : rule) {
      integral += weight * std::pow(tau, p - 2) / std::sqrt(w0 * w0 - c * tau * tau);
    }
    const double expected = std::pow(w0, 2 - p) / std::sqrt(p) * integral;
    const auto result =
        integrate_ncf_flow(ncf, torch::tensor({{w0, v0}}, torch::kFloat64), FlowOptions());
    const auto& m = result.members[0];
    EXPECT_EQ(m.status, FlowStatus::blew_up) << "p = " << p << ": " << flow_status_name(m.status);
    EXPECT_LT(relative_error(m.blowup_time, expected), 1e-9)
        << "p = " << p << ": T* " << m.blowup_time << " vs " << expected;
    // The direction converged to the balanced KKT ray w² = p·v² (SPEC §1 balance).
    const auto direction = result.direction[0];
    EXPECT_NEAR(direction[0].item<double>(), std::sqrt(p / (p + 1.0)), 1e-10) << "p = " << p;
    EXPECT_LT(m.residual, 1e-10);
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

TEST(NcfFlow, StallsAtTheNormFixedByItsConservationLaws) {
  // ȳ = −1, ReLU², x = (1, 0): N = −Σ_j v_j·max(w_j1, 0)². Per unit d(v_j²)/dt = 2N_j and
  // d(w_j1²)/dt = 4N_j, so v_j² − w_j1²/2 is conserved. A unit with w_j1 ≤ 0 never moves; one
  // with v_j > w_j1/√2 > 0 loses w_j1 → 0 while v_j → sqrt(v_j² − w_j1²/2). u then sits at a
  // non-zero critical point of N (∇N = 0, N = 0): a stall, not a collapse (u ↛ 0), and its
  // norm is known in closed form.
  const Ncf ncf(FeedForwardOptions(2, {3}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0}}, torch::kFloat64),
                torch::tensor({-1.0}, torch::kFloat64));
  // Layout: W1 [3, 2] row by row, then W2 [1, 3].
  const std::vector<std::vector<double>> starts = {
      {0.3, 0.1, -0.4, 0.2, 0.5, -0.1, 0.4, 0.3, 0.6},
      {0.5, -0.2, 0.2, 0.0, -0.3, 0.4, 0.7, 0.9, 0.1},
  };
  for (const auto& start : starts) {
    double expected = 0;  // ‖u*‖²
    for (int j = 0; j < 3; ++j) {
      const double w1 = start[2 * j];
      const double w2 = start[2 * j + 1];
      const double v = start[6 + j];
      ASSERT_TRUE(w1 <= 0 || v > w1 / std::sqrt(2.0));
      expected += w2 * w2 + (w1 > 0 ? v * v - w1 * w1 / 2 : w1 * w1 + v * v);
    }
    const auto result =
        integrate_ncf_flow(ncf, torch::tensor(start, torch::kFloat64).unsqueeze(0), FlowOptions());
    const auto& m = result.members[0];
    EXPECT_EQ(m.status, FlowStatus::stalled) << flow_status_name(m.status);
    EXPECT_TRUE(std::isnan(m.blowup_time));
    EXPECT_LT(relative_error(m.norm, std::sqrt(expected)), 1e-8)
        << "norm " << m.norm << " vs " << std::sqrt(expected);
    EXPECT_LE(m.gradient_ratio, FlowOptions().stall_tol());
    EXPECT_NEAR(m.ncf, 0.0, 1e-15);
  }
}

TEST(NcfFlow, CollapsesToANegativeKktPoint) {
  // Single-layer H = σ(wᵀx), σ(z) = z³ (α = 1, p = 3, L = 3) on x = (1, 1), (1, −1), (1, 0)
  // with ȳ = (−3/4, −3/4, 1): N(w) = −w1³/2 − 9/2·w1·w2². On the unit circle
  // N = −cos³θ/2 − 9/2·cosθ·sin²θ has a local maximum at θ = 0 with N* = −1/2 < 0: a flow
  // started near it turns to (1, 0) while ‖u‖ shrinks, dr/dt = L·N*·r² on the ray, so
  // r(t) = r0/(1 + 3/2·r0·t) → 0: a collapse.
  const Ncf ncf(FeedForwardOptions(2, {1})
                    .kind(ModelKind::single_layer)
                    .activation(PolyLeakyReLUOptions().alpha(1).p(3)),
                torch::tensor({{1.0, 1.0}, {1.0, -1.0}, {1.0, 0.0}}, torch::kFloat64),
                torch::tensor({-0.75, -0.75, 1.0}, torch::kFloat64));
  ASSERT_EQ(ncf.total_degree(), 3);
  const auto off_ray =
      integrate_ncf_flow(ncf, torch::tensor({{0.5, 0.1}}, torch::kFloat64), FlowOptions());
  const auto& m = off_ray.members[0];
  EXPECT_EQ(m.status, FlowStatus::collapsed) << flow_status_name(m.status);
  EXPECT_TRUE(std::isnan(m.blowup_time));
  EXPECT_NEAR(m.ncf, -0.5, 1e-10);
  EXPECT_LT(m.residual, 1e-10);
  EXPECT_LT(m.norm, 0.5);
  EXPECT_NEAR(std::abs(off_ray.direction[0][0].item<double>()), 1.0, 1e-12);
  // On the ray itself the direction stands still from the start: collapsed at t = 0.
  const auto on_ray =
      integrate_ncf_flow(ncf, torch::tensor({{0.5, 0.0}}, torch::kFloat64), FlowOptions());
  EXPECT_EQ(on_ray.members[0].status, FlowStatus::collapsed)
      << flow_status_name(on_ray.members[0].status);
  EXPECT_EQ(on_ray.members[0].accepted, 0);
  EXPECT_EQ(on_ray.members[0].norm, 0.5);
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
  // is constant. Sampled where ‖u‖ ≈ 1: past it the O(‖u‖²) terms would swamp the O(‖u0‖²)
  // differences in float64 rounding alone.
  const auto ncf = random_deep_net();
  ASSERT_EQ(ncf.total_degree(), 7);
  const double initial_norm = 0.1;
  const auto u0 = positive_start(ncf, 3, initial_norm);
  const auto options = FlowOptions().rtol(1e-12);
  const auto first = integrate_ncf_flow(ncf, u0, options);
  std::vector<std::vector<double>> times;
  for (const auto& m : first.members) {
    ASSERT_EQ(m.status, FlowStatus::blew_up) << flow_status_name(m.status);
    // ‖u‖ ≈ 1 at T* − 1/((L−2)·L·N*) on the ray: near enough.
    times.push_back({m.blowup_time - 1 / (5.0 * 7 * m.ncf)});
  }
  const auto sampled = integrate_ncf_flow(ncf, u0, FlowOptions(options).sample_times(times));
  std::vector<torch::Tensor> finals;
  for (const auto& m : sampled.members) finals.push_back(m.samples[0]);
  const auto at_sample = torch::stack(finals);
  const auto before = scaled_layer_norms(ncf, u0);
  const auto after = scaled_layer_norms(ncf, at_sample);
  const auto drift =
      ((after.diff(1, 1) - before.diff(1, 1)).abs().max() / (initial_norm * initial_norm))
          .item<double>();
  EXPECT_LT(drift, 1e-8);
  // The norms themselves grew a lot: the check is not trivially true.
  EXPECT_GT((after - before).abs().min().item<double>(), 1e-2);
}

TEST_F(NcfFlowRandom, DeepNetsHaveAFiniteBlowUpTimeIndependentOfTheStoppingOptions) {
  // L = 7: the old first-order extrapolation from ‖u‖ = max_norm broke down here (SPEC §1).
  const auto ncf = random_deep_net();
  const auto u0 = positive_start(ncf, 2, 1.0);
  const auto reference = integrate_ncf_flow(ncf, u0, FlowOptions().rtol(1e-14));
  const std::vector<FlowOptions> variants = {
      FlowOptions(), FlowOptions().max_norm(0), FlowOptions().max_norm(10),
      FlowOptions().record_every(1).max_steps(100000), FlowOptions().rtol(1e-13)};
  for (size_t s = 0; s < reference.members.size(); ++s) {
    const auto& r = reference.members[s];
    ASSERT_EQ(r.status, FlowStatus::blew_up) << flow_status_name(r.status);
    ASSERT_TRUE(std::isfinite(r.blowup_time));
    EXPECT_LT(r.residual, 1e-10);
  }
  for (size_t v = 0; v < variants.size(); ++v) {
    const auto result = integrate_ncf_flow(ncf, u0, variants[v]);
    for (size_t s = 0; s < reference.members.size(); ++s) {
      const auto& m = result.members[s];
      EXPECT_EQ(m.status, FlowStatus::blew_up) << "variant " << v;
      EXPECT_LT(relative_error(m.blowup_time, reference.members[s].blowup_time), 1e-9)
          << "variant " << v << " member " << s << ": " << m.blowup_time << " vs "
          << reference.members[s].blowup_time;
      const auto i = static_cast<int64_t>(s);
      EXPECT_LT((result.direction[i] - reference.direction[i]).norm().item<double>(), 1e-8)
          << "variant " << v << " member " << s;
    }
  }
}

TEST_F(NcfFlowRandom, EnsembleMembersMatchSeparateRuns) {
  const auto ncf = random_deep_net();
  const auto u0 = positive_start(ncf, 3, 0.5);
  const auto options = FlowOptions();
  const auto together = integrate_ncf_flow(ncf, u0, options);
  for (int64_t s = 0; s < u0.size(0); ++s) {
    const auto alone = integrate_ncf_flow(ncf, u0.narrow(0, s, 1), options);
    const auto& a = alone.members[0];
    const auto& t = together.members[static_cast<size_t>(s)];
    EXPECT_EQ(t.status, FlowStatus::blew_up) << flow_status_name(t.status);
    EXPECT_EQ(a.status, t.status);
    EXPECT_LT(relative_error(t.blowup_time, a.blowup_time), 1e-12)
        << "member " << s << ": " << t.blowup_time << " vs " << a.blowup_time;
    EXPECT_LT((together.direction[s] - alone.direction[0]).abs().max().item<double>(), 1e-12);
  }
}

TEST_F(NcfFlowRandom, HostLoopsIntegrateTheFlowOfTheAtenPath) {
  // On CPU in float64 the field and the stages run in loops on the host; elsewhere in
  // batched ATen ops. Their sums round differently, so the step-size controller soon takes
  // other steps; both integrate the same flow to its accuracy: T* and the direction agree
  // far below what one more digit of rtol changes (1e-9 here), on a deep net (L = 7) and on
  // a single-layer one (fixed output row).
  const auto single =
      Ncf(FeedForwardOptions(4, {5})
              .kind(ModelKind::single_layer)
              .activation(PolyLeakyReLUOptions().alpha(0.3).p(3)),
          torch::randn({20, 4}, torch::kFloat64), torch::randn({20}, torch::kFloat64));
  for (const auto& ncf : {random_deep_net(), single}) {
    const auto u0 = positive_start(ncf, 3, 0.5);
    const auto loops = integrate_ncf_flow(ncf, u0, FlowOptions());
    const auto aten = integrate_ncf_flow(ncf, u0, FlowOptions().host_loops(false));
    for (size_t s = 0; s < loops.members.size(); ++s) {
      const auto& a = loops.members[s];
      const auto& b = aten.members[s];
      ASSERT_EQ(a.status, FlowStatus::blew_up) << flow_status_name(a.status);
      EXPECT_EQ(a.status, b.status) << "member " << s;
      EXPECT_NEAR(static_cast<double>(a.accepted), static_cast<double>(b.accepted),
                  0.05 * static_cast<double>(b.accepted))
          << "member " << s;
      EXPECT_LT(relative_error(a.blowup_time, b.blowup_time), 1e-9)
          << "member " << s << ": " << a.blowup_time << " vs " << b.blowup_time;
    }
    EXPECT_LT((loops.direction - aten.direction).abs().max().item<double>(), 1e-9);
  }
}

TEST_F(NcfFlowRandom, BlowUpDirectionIsTheConvergedKktPointWhateverTheTolerance) {
  // L = 3: at ‖u‖ = 1e3 the direction still turns (the old reference point); the converged
  // direction is a KKT point, the same at two tolerances whose steps differ.
  const auto ncf =
      Ncf(FeedForwardOptions(5, {6}).activation(PolyLeakyReLUOptions().alpha(0.2).p(2)),
          torch::randn({30, 5}, torch::kFloat64), torch::randn({30}, torch::kFloat64));
  const auto u0 = positive_start(ncf, 1, 1.0);
  const auto loose = integrate_ncf_flow(ncf, u0, FlowOptions());
  const auto tight = integrate_ncf_flow(ncf, u0, FlowOptions().rtol(1e-14));
  const auto& first = loose.members[0];
  const auto& second = tight.members[0];
  ASSERT_EQ(first.status, FlowStatus::blew_up) << flow_status_name(first.status);
  ASSERT_EQ(second.status, FlowStatus::blew_up);
  EXPECT_NE(first.accepted, second.accepted);
  EXPECT_LE(first.residual, 1e-10);
  EXPECT_LE(ncf.smooth_residual(loose.direction).item<double>(), 1e-10);
  EXPECT_LT((loose.direction[0] - tight.direction[0]).norm().item<double>(), 1e-9);
  EXPECT_LT(relative_error(second.blowup_time, first.blowup_time), 1e-9);
  EXPECT_LT(relative_error(second.ncf, first.ncf), 1e-12);
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
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().max_norm(-1)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().record_every(0)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().direction_tol(0)), c10::Error);
  EXPECT_THROW(integrate_ncf_flow(ncf, good, FlowOptions().stall_tol(1)), c10::Error);
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
  const auto result =
      integrate_ncf_flow(ncf, torch::stack({radii[0] * kkt, radii[1] * kkt}), FlowOptions());
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

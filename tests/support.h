// Shared test helpers: a seeding fixture, temporary files, log capture, and the
// reusable invariance checks (homogeneity, Euler's identity) swept over shapes.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ncflab/cli/cli.h"
#include "ncflab/core/log.h"
#include "ncflab/model/feedforward.h"

namespace ncflab::testing {

/// Seeds torch's global generator so ad-hoc test tensors are reproducible.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(20240313); }
};

/// A fresh directory under the system temp folder, removed at destruction.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // The process id too: two test runs at once (two build trees, or CI beside a developer)
    // must not share, and clear, each other's directories.
    path_ = std::filesystem::temp_directory_path() /
            (std::string("ncflab_") + info->test_suite_name() + "_" + info->name() + "_" +
             std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }

  /// Writes `text` to `name` inside the directory and returns the full path.
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::ofstream(file) << text;
    return file.string();
  }
  std::string path(const std::string& name = "") const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// What `ncflab ARGS...` printed and returned.
struct CliResult {
  int code;
  std::string out;
  std::string err;
};

/// Runs the command line exactly as the executable does (args without the program name).
inline CliResult run_ncflab(std::vector<std::string> args) {
  args.insert(args.begin(), "ncflab");
  std::ostringstream out;
  std::ostringstream err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

inline const std::string kQuickstart =
    std::string(NCFLAB_SOURCE_DIR) + "/experiments/quickstart.yaml";

/// `args` followed by `more`: a command line built from shared override lists.
inline std::vector<std::string> with(std::vector<std::string> args,
                                     const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

/// |got − expected| / |expected|.
inline double relative_error(double got, double expected) {
  return std::abs(got - expected) / std::abs(expected);
}

/// The JSON file at `path` (a run's summary.json, kkt.json, …).
inline nlohmann::json read_json(const std::string& path) {
  std::ifstream file(path);
  return nlohmann::json::parse(file);
}

/// Collects log messages while alive (and keeps them off stderr).
class CapturedLog {
 public:
  CapturedLog()
      : previous_(set_log_sink([this](LogLevel level, std::string_view message) {
          if (level == LogLevel::warning) warnings.emplace_back(message);
        })) {}
  ~CapturedLog() { set_log_sink(std::move(previous_)); }
  std::vector<std::string> warnings;

 private:
  LogSink previous_;
};

/// Random float64 weights [S, k_l, k_{l−1}] shaped like `model`'s layers.
inline std::vector<torch::Tensor> random_weights(const FeedForwardImpl& model, int64_t members) {
  std::vector<torch::Tensor> weights;
  for (const auto& shape : model.layer_shapes()) {
    weights.push_back(torch::randn({members, shape[0], shape[1]}, torch::kFloat64));
  }
  return weights;
}

/// N(u) = ȳᵀH(X; u) per member [S].
inline torch::Tensor ncf_value(const std::vector<torch::Tensor>& weights,
                               const torch::Tensor& inputs, const torch::Tensor& ybar,
                               const FeedForwardOptions& options) {
  return (feedforward_outputs(weights, inputs, options) * ybar).sum(-1);
}

/// A model kind, shape and activation to sweep the invariance checks over.
struct NetCase {
  std::vector<int64_t> widths;
  double alpha;
  int64_t p;
  ModelKind kind = ModelKind::feedforward;
};

/// The architecture of `c` on inputs of dimension d (chain .members(), .seed(), …).
inline FeedForwardOptions model_options(const NetCase& c, int64_t d) {
  return FeedForwardOptions(d, c.widths)
      .kind(c.kind)
      .activation(PolyLeakyReLUOptions().alpha(c.alpha).p(c.p));
}

/// "widths_6_4_alpha_m30_p_3" for widths [6, 4], α = −0.3, p = 3; "single_layer_widths_…"
/// for the single-layer kind.
inline std::string case_name(const ::testing::TestParamInfo<NetCase>& info) {
  std::string name = info.param.kind == ModelKind::single_layer ? "single_layer_widths" : "widths";
  for (auto w : info.param.widths) name += "_" + std::to_string(w);
  const int percent = static_cast<int>(std::lround(info.param.alpha * 100));
  name += "_alpha_" + std::string(percent < 0 ? "m" : "") + std::to_string(std::abs(percent));
  return name + "_p_" + std::to_string(info.param.p);
}

inline void PrintTo(const NetCase& c, std::ostream* os) {
  *os << model_kind_name(c.kind) << ", widths [";
  for (size_t i = 0; i < c.widths.size(); ++i) *os << (i ? ", " : "") << c.widths[i];
  *os << "], alpha " << c.alpha << ", p " << c.p;
}

/// Shapes × activation families: ReLU, Leaky ReLU, polynomial, odd and even powers; and the
/// single-layer model H = Σ_j σ(w_jᵀx) with Leaky ReLU (L = 1), ReLU² (L = 2) and p = 3.
inline std::vector<NetCase> net_cases() {
  constexpr auto single = ModelKind::single_layer;
  return {{{7}, 0.0, 1},        {{5}, 0.2, 1},       {{6, 4}, 0.1, 1},      {{3, 3, 3}, 0.5, 1},
          {{8}, 0.2, 2},        {{4, 5}, 0.0, 2},    {{6}, 1.0, 3},         {{3, 4}, -1.0, 2},
          {{5}, -0.3, 3},       {{2, 3, 2}, 0.2, 2}, {{7}, 0.1, 1, single}, {{6}, 0.0, 2, single},
          {{5}, 0.3, 3, single}};
}

/// Gauss–Legendre nodes and weights on [0, 1] (Newton on the Legendre polynomial): closed
/// forms that are integrals of smooth functions, to rounding.
inline std::vector<std::pair<double, double>> gauss_legendre(int order) {
  std::vector<std::pair<double, double>> rule;
  for (int i = 1; i <= order; ++i) {
    double x = std::cos(M_PI * (i - 0.25) / (order + 0.5));
    double derivative = 0;
    for (int iteration = 0; iteration < 100; ++iteration) {
      double p0 = 1;
      double p1 = x;
      for (int k = 2; k <= order; ++k) {
        const double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      derivative = order * (x * p1 - p0) / (x * x - 1);
      const double dx = p1 / derivative;
      x -= dx;
      if (std::abs(dx) < 1e-16) break;
    }
    rule.emplace_back(0.5 * (1 - x), 1 / ((1 - x * x) * derivative * derivative));
  }
  return rule;
}

/// ∫_a^b f by `rule` (gauss_legendre) on [a, b].
template <typename F>
double integrate(const std::vector<std::pair<double, double>>& rule, double a, double b, F f) {
  double sum = 0;
  for (const auto& [x, w] : rule) sum += w * f(a + (b - a) * x);
  return (b - a) * sum;
}

}  // namespace ncflab::testing

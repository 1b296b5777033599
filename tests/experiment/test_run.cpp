// `ncflab run` and `ncflab sweep` as a user runs them: the run directory of SPEC §5, the
// theory's numbers in summary.json, protection of finished runs, clear errors for bad
// resumes, failed runs marked failed, and sweep rows equal to the individual runs.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ncflab/core/files.h"
#include "support.h"

namespace ncflab {
namespace {

using ::testing::HasSubstr;
using testing::kQuickstart;
using testing::read_json;
using testing::run_ncflab;
using testing::TempDir;
using testing::with;

// A quick two-member version of the quickstart (L = 3).
const std::vector<std::string> kTwoMemberQuickstart = {
    "data.n=30", "model.widths=[5]", "init.scale=0.01", "ensemble.seeds=2", "hooks.progress=false"};

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  return lines;
}

TEST(Run, SnapshotsHoldTheWeightsEveryNStepsAndAtTheEnd) {
  TempDir dir;
  const auto out = dir.path("run");
  // Two members escaping at different steps: a finished member keeps its final weights.
  const auto result = run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart),
                                      {"train.snapshot_every=50", "--out", out}));
  ASSERT_EQ(result.code, 0) << result.err;
  const auto summary = read_json(out + "/summary.json");
  const int64_t last = std::max(summary["members"][0]["steps"].get<int64_t>(),
                                summary["members"][1]["steps"].get<int64_t>());
  const auto trajectory = load_tensor_dict(out + "/weights_trajectory.pt");
  const auto init = load_tensor_dict(out + "/weights_init.pt");
  const auto final = load_tensor_dict(out + "/weights_final.pt");
  ASSERT_EQ(trajectory.size(), 2 + init.size());
  ASSERT_EQ(trajectory[0].first, "step");
  ASSERT_EQ(trajectory[1].first, "time");
  const auto steps = trajectory[0].second;
  const auto times = trajectory[1].second;  // [T, S]: a finished member keeps its time
  EXPECT_EQ(steps.scalar_type(), torch::kLong);
  const int64_t count = steps.size(0);
  ASSERT_EQ(count, last / 50 + 1 + (last % 50 != 0 ? 1 : 0));
  ASSERT_EQ(times.sizes(), torch::IntArrayRef({count, 2}));
  for (int64_t i = 0; i + 1 < count; ++i) EXPECT_EQ(steps[i].item<int64_t>(), 50 * i);
  EXPECT_EQ(steps[count - 1].item<int64_t>(), last);
  for (int64_t s = 0; s < 2; ++s) {
    EXPECT_EQ(times[count - 1][s].item<double>(), summary["members"][s]["time"].get<double>());
  }
  for (size_t l = 0; l < init.size(); ++l) {
    const auto& layer = trajectory[l + 2].second;
    EXPECT_EQ(trajectory[l + 2].first, init[l].first);
    EXPECT_TRUE(torch::equal(layer[0], init[l].second));
    EXPECT_TRUE(torch::equal(layer[count - 1], final[l].second));
    EXPECT_FALSE(torch::equal(layer[1], layer[0]));  // the weights moved in between
  }
}

TEST(Run, WritesTheRunDirectoryOfTheSpec) {
  TempDir dir;
  const auto out = dir.path("run");
  const auto result =
      run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart), {"--out", out}));
  ASSERT_EQ(result.code, 0) << result.err;
  for (const char* file : {"config.yaml", "overrides.txt", "metrics.csv", "summary.json",
                           "meta.json", "weights_init.pt", "weights_final.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(out + "/checkpoint.pt"));  // finished: nothing to resume

  const auto summary = read_json(out + "/summary.json");
  for (const char* key : {"status", "homogeneity", "delta", "steps", "time", "escape", "ncf_flow",
                          "final", "layers", "wall_seconds", "steps_per_second", "members"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  EXPECT_EQ(summary["homogeneity"]["total"], 3);
  EXPECT_EQ(summary["homogeneity"]["layers"], nlohmann::json({2, 1}));
  ASSERT_EQ(summary["members"].size(), 2u);
  for (const auto& member : summary["members"]) {
    ASSERT_EQ(member["status"], "escaped");
    const auto& escape = member["escape"];
    // L − 2 = 1: the rescaled time is δ·t, and t = k·η.
    EXPECT_DOUBLE_EQ(escape["time"].get<double>(), escape["step"].get<double>() * 1e-2);
    EXPECT_NEAR(escape["rescaled_time"].get<double>(), 0.01 * escape["time"].get<double>(), 1e-15);
    EXPECT_GE(escape["norm"].get<double>(), 0.1);
    // At δ = 0.01 the escape is already close to the flow's prediction T* and direction.
    EXPECT_NEAR(escape["rescaled_time_over_blowup_time"].get<double>(), 1.0, 0.1);
    EXPECT_GT(member["final"]["cos_to_flow"].get<double>(), 0.9);
    EXPECT_EQ(member["steps"], escape["step"]);
    const auto& layers = member["layers"];
    ASSERT_EQ(layers.size(), 2u);
    EXPECT_DOUBLE_EQ(layers[0]["kkt_share"].get<double>(), 2.0 / 3);
  }

  // weights: {"W1": [S, k_1, d], "W2": [S, 1, k_1]}, w_0 = δ·w0 with ‖w0‖ = 1 per member.
  const auto weights = load_tensor_dict(out + "/weights_init.pt");
  ASSERT_EQ(weights.size(), 2u);
  EXPECT_EQ(weights[0].first, "W1");
  EXPECT_EQ(weights[0].second.sizes(), torch::IntArrayRef({2, 5, 10}));
  EXPECT_EQ(weights[1].second.sizes(), torch::IntArrayRef({2, 1, 5}));
  const auto norms =
      (weights[0].second.square().sum({1, 2}) + weights[1].second.square().sum({1, 2})).sqrt();
  EXPECT_TRUE(torch::allclose(norms, torch::full({2}, 0.01, torch::kFloat64), 0, 1e-15));

  // metrics.csv: SPEC §5's columns; the last row of each member is its escape step.
  const auto lines = lines_of(out + "/metrics.csv");
  ASSERT_GT(lines.size(), 3u);
  for (const char* column :
       {"member", "step", "time", "loss", "norm", "ncf", "kkt_residual", "cos_to_flow",
        "cos_to_flow_now", "layer1_norm", "layer2_norm", "layer1_sv_ratio"}) {
    EXPECT_THAT(lines[0], HasSubstr(column));
  }
  const auto escape_step = summary["members"][1]["escape"]["step"].get<int64_t>();
  bool found = false;
  for (const auto& line : lines)
    found = found || line.rfind("1," + std::to_string(escape_step) + ",", 0) == 0;
  EXPECT_TRUE(found) << "no metrics row for member 1 at its escape step " << escape_step;
  const auto meta = read_json(out + "/meta.json");
  EXPECT_TRUE(meta.contains("libtorch"));
  EXPECT_EQ(meta["engine"], "fused");
}

TEST(Run, GradientFlowRunLogsOnTheRescaledGridAndMatchesGradientDescent) {
  TempDir dir;
  const auto flow_out = dir.path("flow");
  const auto gd_out = dir.path("gd");
  const auto flow_run = run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart),
                                        {"train.integrator=flow", "--out", flow_out}));
  ASSERT_EQ(flow_run.code, 0) << flow_run.err;
  EXPECT_THAT(flow_run.out, HasSubstr("(train.log_interval auto)"));
  EXPECT_THAT(flow_run.out, HasSubstr("gradient evaluations"));
  const auto gd_run =
      run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart),
                      {"train.step=1e-3", "train.max_steps=1000000", "--out", gd_out}));
  ASSERT_EQ(gd_run.code, 0) << gd_run.err;
  const auto flow = read_json(flow_out + "/summary.json");
  const auto gd = read_json(gd_out + "/summary.json");
  EXPECT_EQ(flow["integrator"], "flow");
  EXPECT_EQ(gd["integrator"], "gd");
  // Auto row spacing: 1, 2 or 5 × 10^k at most a hundredth of the earliest T*.
  const double interval = flow["log_interval"].get<double>();
  double earliest = 1e300;
  for (const auto& member : flow["members"]) {
    earliest = std::min(earliest, member["ncf_flow"]["blowup_time"].get<double>());
  }
  EXPECT_LE(interval, earliest / 100);
  EXPECT_GT(interval, earliest / 500);
  for (size_t s = 0; s < 2; ++s) {
    const auto& f = flow["members"][s];
    const auto& g = gd["members"][s];
    ASSERT_EQ(f["status"], "escaped");
    // The same physical time: gradient descent at η = 1e-3 lags the flow by O(η).
    EXPECT_NEAR(f["escape"]["time"].get<double>() / g["escape"]["time"].get<double>(), 1.0, 2e-3);
    EXPECT_GT(f["gradient_evaluations"].get<int64_t>(), 6 * f["steps"].get<int64_t>());
    EXPECT_LT(f["steps"].get<int64_t>(), 1000);  // gradient descent: tens of thousands
    EXPECT_TRUE(f.contains("rejected_steps"));
    EXPECT_GT(f["final"]["cos_to_flow"].get<double>(), 0.9);
  }
  // Rows of member 0: at δ^(L−2)·t = j·interval (step column j) until the escape row, where
  // the flow itself is sampled (cos_to_flow_now finite, near 1 early on).
  const auto lines = lines_of(flow_out + "/metrics.csv");
  const auto header = lines.front();
  ASSERT_THAT(header, HasSubstr("cos_to_flow_now"));
  int64_t rows = 0;
  int64_t sampled = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::stringstream line(lines[i]);
    std::vector<std::string> cells;
    for (std::string cell; std::getline(line, cell, ',');) cells.push_back(cell);
    if (cells[0] != "0") continue;
    const int64_t step = std::stoll(cells[1]);
    const double rescaled = std::stod(cells[3]);
    if (std::abs(rescaled - static_cast<double>(step) * interval) > 1e-12) {
      EXPECT_EQ(std::stod(cells[2]), flow["members"][0]["escape"]["time"].get<double>());
      continue;  // the escape row
    }
    ++rows;
    if (cells.back() == "nan") continue;  // past the flow's blow-up
    ++sampled;
    if (rescaled < 0.5 * earliest) {
      EXPECT_GT(std::stod(cells.back()), 0.999) << lines[i];
    }
  }
  EXPECT_GE(rows, 100);
  EXPECT_GE(sampled, 90);
}

TEST(Run, EnginesGiveTheSameRun) {
  TempDir dir;
  std::vector<nlohmann::json> summaries;
  for (const char* engine : {"fused", "batched", "autograd"}) {
    const auto out = dir.path(engine);
    const auto result = run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart),
                                        {std::string("train.engine=") + engine, "--out", out}));
    ASSERT_EQ(result.code, 0) << result.err;
    summaries.push_back(read_json(out + "/summary.json"));
    EXPECT_EQ(summaries.back()["engine"], engine);
  }
  for (size_t e = 1; e < summaries.size(); ++e) {
    for (size_t s = 0; s < 2; ++s) {
      const auto& a = summaries[0]["members"][s];
      const auto& b = summaries[e]["members"][s];
      EXPECT_EQ(a["escape"]["step"], b["escape"]["step"]);
      EXPECT_NEAR(a["final"]["loss"].get<double>(), b["final"]["loss"].get<double>(),
                  1e-11 * a["final"]["loss"].get<double>());
    }
  }
}

TEST(Run, EscapesTowardTheKktPointTheSearchFinds) {
  TempDir dir;
  const auto out = dir.path("run");
  const auto result = run_ncflab({"run", kQuickstart, "init.scale=0.003", "hooks.kkt_search=true",
                                  "kkt.restarts=4", "hooks.progress=false", "--out", out});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("non-negative KKT points from 4 starts"));
  const auto final = read_json(out + "/summary.json")["final"];
  // The flow's blow-up direction is a KKT point; the search finds the same one (its units
  // in another order), so both cosines tell the same story at escape.
  EXPECT_GT(final["cos_to_kkt"].get<double>(), 0.99);
  EXPECT_NEAR(final["cos_to_kkt"].get<double>(), final["cos_to_flow"].get<double>(), 1e-3);
}

TEST(Run, DoesNotOverwriteAFinishedRun) {
  TempDir dir;
  const auto out = dir.path("run");
  const auto args = with(with({"run", kQuickstart}, kTwoMemberQuickstart), {"--out", out});
  ASSERT_EQ(run_ncflab(args).code, 0);
  const auto again = run_ncflab(args);
  EXPECT_EQ(again.code, 2);
  EXPECT_THAT(again.err, HasSubstr("--overwrite"));
  EXPECT_EQ(run_ncflab(with(args, {"--overwrite"})).code, 0);
}

TEST(Run, ResumeNeedsACheckpoint) {
  TempDir dir;
  const auto out = dir.path("run");
  ASSERT_EQ(run_ncflab(with(with({"run", kQuickstart}, kTwoMemberQuickstart), {"--out", out})).code,
            0);
  const auto finished = run_ncflab({"run", "--resume", out});
  EXPECT_EQ(finished.code, 2);
  EXPECT_THAT(finished.err, HasSubstr("no checkpoint.pt (the run ended with status escaped)"));

  const auto missing = run_ncflab({"run", "--resume", dir.path("nowhere")});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("a run directory holding config.yaml"));

  // A corrupt checkpoint is an error, never a silent fresh start; the summary is untouched.
  std::ofstream(out + "/checkpoint.pt") << "not a checkpoint";
  const std::string before = read_json(out + "/summary.json").dump();
  const auto corrupt = run_ncflab({"run", "--resume", out});
  EXPECT_EQ(corrupt.code, 2);
  EXPECT_THAT(corrupt.err, HasSubstr("checkpoint.pt"));
  EXPECT_EQ(read_json(out + "/summary.json").dump(), before);

  const auto with_config = run_ncflab({"run", kQuickstart, "--resume", out});
  EXPECT_EQ(with_config.code, 2);
}

TEST(Run, AFailedRunIsMarkedFailed) {
  TempDir dir;
  const auto csv = dir.write("bad.csv", "x1,x2,y\n1,2,3\n4,nan,6\n");
  const auto out = dir.path("run");
  const auto result = run_ncflab({"run", kQuickstart, "data.source=csv", "data.path=" + csv,
                                  "hooks.progress=false", "--out", out});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("bad.csv:3"));
  EXPECT_EQ(read_json(out + "/summary.json")["status"], "failed");
}

TEST(Sweep, RowsMatchTheIndividualRuns) {
  TempDir dir;
  const std::vector<std::string> base = {"data.n=30", "model.widths=[5]", "hooks.progress=false"};
  const auto root = dir.path("sweep");
  const auto sweep = run_ncflab(with(with({"sweep", kQuickstart}, base),
                                     {"init.scale=0.03,0.01", "seed=range(0,2,1)", "--out", root}));
  ASSERT_EQ(sweep.code, 0) << sweep.err;
  const auto rows = lines_of(root + "/sweep.csv");
  ASSERT_EQ(rows.size(), 5u);  // header + 2 × 2 runs
  EXPECT_EQ(
      rows[0].rfind(
          "run,directory,init.scale,seed,status,delta,steps,gradient_evaluations,escape.step", 0),
      0u)
      << rows[0];
  // Row 3: init.scale = 0.01, seed = 0 (the last key varies fastest).
  const auto single = dir.path("single");
  ASSERT_EQ(run_ncflab(with(with({"run", kQuickstart}, base),
                            {"init.scale=0.01", "seed=0", "--out", single}))
                .code,
            0);
  const auto summary = read_json(single + "/summary.json");
  std::stringstream row(rows[3]);
  std::vector<std::string> cells;
  for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
  ASSERT_GE(cells.size(), 10u);
  EXPECT_EQ(cells[2], "0.01");
  EXPECT_EQ(cells[3], "0");
  EXPECT_EQ(cells[4], summary["status"].get<std::string>());
  EXPECT_EQ(cells[7], std::to_string(summary["gradient_evaluations"].get<int64_t>()));
  EXPECT_EQ(cells[8], std::to_string(summary["escape"]["step"].get<int64_t>()));
  EXPECT_DOUBLE_EQ(std::stod(cells[10]), summary["escape"]["rescaled_time"].get<double>());
  const auto swept = read_json(root + "/" + cells[1] + "/summary.json");
  EXPECT_EQ(swept["final"]["loss"], summary["final"]["loss"]);
}

TEST(Sweep, ValuesWithCommasAreQuotedCsvCells) {
  TempDir dir;
  const auto root = dir.path("sweep");
  const auto sweep = run_ncflab({"sweep", kQuickstart, "data.n=20", "init.scale=0.03",
                                 "hooks.progress=false", "model.widths=[3,2],[2]", "--out", root});
  ASSERT_EQ(sweep.code, 0) << sweep.err;
  const auto rows = lines_of(root + "/sweep.csv");
  ASSERT_EQ(rows.size(), 3u);
  // The header's column count holds for every row once quoted cells are read as one.
  const auto cells = [](const std::string& line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (c == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        out.emplace_back();
      } else {
        out.back() += c;
      }
    }
    return out;
  };
  const auto header = cells(rows[0]);
  for (size_t r = 1; r < rows.size(); ++r)
    EXPECT_EQ(cells(rows[r]).size(), header.size()) << rows[r];
  EXPECT_EQ(cells(rows[1])[2], "[3,2]");
  EXPECT_EQ(cells(rows[2])[2], "[2]");
}

// A metrics.csv row's cells (numbers and names: no quoting).
std::vector<std::string> metrics_cells(const std::string& line) {
  std::vector<std::string> cells(1);
  for (const char c : line) {
    if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  return cells;
}

TEST(Sweep, DeltasTrainAsOneEnsembleWithTheResultsOfSeparateRuns) {
  TempDir dir;
  const std::vector<std::string> grid = {"sweep",
                                         kQuickstart,
                                         "data.n=30",
                                         "model.widths=[5]",
                                         "ensemble.seeds=2",
                                         "hooks.progress=false",
                                         "init.scale=0.03,0.01,0.003"};
  const auto batched = run_ncflab(with(grid, {"--out", dir.path("batched")}));
  ASSERT_EQ(batched.code, 0) << batched.err;
  EXPECT_THAT(batched.out, HasSubstr("3 runs as one ensemble of 6 members"));
  const auto sequential = run_ncflab(with(grid, {"--sequential", "--out", dir.path("sequential")}));
  ASSERT_EQ(sequential.code, 0) << sequential.err;
  for (const char* run : {"000_init.scale=0.03", "001_init.scale=0.01", "002_init.scale=0.003"}) {
    const auto a = read_json(dir.path("batched") + "/" + run + "/summary.json");
    const auto b = read_json(dir.path("sequential") + "/" + run + "/summary.json");
    EXPECT_EQ(a["batched_runs"], 3);
    ASSERT_EQ(a["members"].size(), 2u);
    for (size_t s = 0; s < 2; ++s) {
      EXPECT_EQ(a["members"][s]["escape"], b["members"][s]["escape"]) << run;
      EXPECT_EQ(a["members"][s]["final"], b["members"][s]["final"]) << run;  // bit for bit
    }
    // The trajectory bit for bit; the diagnostics that LibTorch computes on the whole
    // ensemble's tensors (KKT residual, layer statistics, ...) to rounding: an optimised BLAS
    // (OpenBLAS) may sum a batch of 6 in another order than a batch of 2.
    const auto together = lines_of(dir.path("batched") + "/" + run + "/metrics.csv");
    const auto apart = lines_of(dir.path("sequential") + "/" + run + "/metrics.csv");
    ASSERT_EQ(together.size(), apart.size()) << run;
    ASSERT_FALSE(together.empty());
    EXPECT_EQ(together[0], apart[0]);
    const auto header = metrics_cells(together[0]);
    for (size_t r = 1; r < together.size(); ++r) {
      const auto mine = metrics_cells(together[r]);
      const auto theirs = metrics_cells(apart[r]);
      ASSERT_EQ(mine.size(), header.size());
      ASSERT_EQ(theirs.size(), header.size());
      for (size_t c = 0; c < header.size(); ++c) {
        if (c <= 7) {  // member, step, time, rescaled_time, loss, norm, norm_over_delta, ‖∇ℓ‖
          EXPECT_EQ(mine[c], theirs[c]) << run << " row " << r << " " << header[c];
        } else if (mine[c] != theirs[c]) {
          const double x = std::stod(mine[c]);
          const double y = std::stod(theirs[c]);
          EXPECT_LE(std::abs(x - y), 1e-12 * std::max(1.0, std::abs(y)))
              << run << " row " << r << " " << header[c] << ": " << mine[c] << " vs " << theirs[c];
        }
      }
    }
  }
}

// The single-layer ReLU² model H = Σ_j max(w_jᵀx, 0)² (model.kind single_layer, L = 2, the
// figure-1 model of 2402.09226): no finite blow-up and δ^(L−2) = 1. Once w/‖w‖ has settled,
// ‖w‖ grows like δ·e^(2N*t), so t_esc = ln(1/δ)/(2N*) + const: a line in ln(1/δ) with
// slope 1/(2N*), N* = N at the flow's direction.
TEST(Sweep, SingleLayerReluSquaredEscapeTimeGrowsLikeLogOneOverDelta) {
  TempDir dir;
  const auto root = dir.path("sweep");
  // One thread: ~5000 short steps, where OpenMP's per-step fork and join only cost time.
  const auto sweep =
      run_ncflab({"sweep", kQuickstart, "model.kind=single_layer", "model.widths=[5]",
                  "model.activation.alpha=0", "data.n=30", "train.step=1e-5", "threads=1",
                  "hooks.progress=false", "init.scale=1e-2,1e-3,1e-4", "--out", root});
  ASSERT_EQ(sweep.code, 0) << sweep.err;
  std::vector<double> log_inverse_delta;
  std::vector<double> escape_times;
  double ncf_star = 0;
  for (const char* run : {"000_init.scale=1e-2", "001_init.scale=1e-3", "002_init.scale=1e-4"}) {
    SCOPED_TRACE(run);
    const auto out = root + "/" + run;
    const auto summary = read_json(out + "/summary.json");
    ASSERT_EQ(summary["status"], "escaped");
    EXPECT_EQ(summary["homogeneity"], nlohmann::json({{"total", 2}, {"layers", {2}}}));
    ASSERT_EQ(summary["layers"].size(), 1u);  // W1 alone: share and KKT share 1
    EXPECT_EQ(summary["layers"][0]["kkt_share"].get<double>(), 1.0);
    EXPECT_NEAR(summary["layers"][0]["share"].get<double>(), 1.0, 1e-15);
    EXPECT_TRUE(summary["ncf_flow"]["blowup_time"].is_null());
    EXPECT_EQ(summary["ncf_flow"]["outcome"], "blew_up");  // L = 2: no T*, an escape time
    EXPECT_FALSE(summary.contains("predicted_escape_time"));
    const auto weights = load_tensor_dict(out + "/weights_final.pt");
    ASSERT_EQ(weights.size(), 1u);
    EXPECT_EQ(weights[0].first, "W1");
    EXPECT_EQ(weights[0].second.sizes(), torch::IntArrayRef({1, 5, 10}));
    const auto header = lines_of(out + "/metrics.csv").front();
    EXPECT_THAT(header, HasSubstr("layer1_sv_ratio"));
    EXPECT_THAT(header, ::testing::Not(HasSubstr("layer2")));
    log_inverse_delta.push_back(-std::log(summary["delta"].get<double>()));
    escape_times.push_back(summary["escape"]["time"].get<double>());
    ncf_star = summary["ncf_flow"]["ncf"].get<double>();
    if (summary["delta"].get<double>() < 2e-4) {
      EXPECT_GT(summary["final"]["cos_to_flow"].get<double>(), 0.99);
    }
  }
  // Least-squares line t = a + b·ln(1/δ) through the three escapes.
  const auto x = torch::tensor(log_inverse_delta, torch::kFloat64);
  const auto t = torch::tensor(escape_times, torch::kFloat64);
  const auto xc = x - x.mean();
  const double slope = ((xc * (t - t.mean())).sum() / xc.square().sum()).item<double>();
  const auto residuals = t - t.mean() - slope * xc;
  const double deviation = (residuals.abs().max() / (t.max() - t.min())).item<double>();
  EXPECT_GT(slope, 0.0);
  EXPECT_LT(deviation, 0.02) << "escape times " << t;
  EXPECT_NEAR(slope * 2 * ncf_star, 1.0, 0.03)
      << "slope " << slope << ", 1/(2N*) " << 0.5 / ncf_star;
}

TEST(Sweep, RejectsAGridWithATypoBeforeRunningAnything) {
  TempDir dir;
  const auto root = dir.path("sweep");
  const auto result =
      run_ncflab({"sweep", kQuickstart, "init.scale=0.03,0.01", "trian.step=1,2", "--out", root});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("trian"));
  EXPECT_FALSE(std::filesystem::exists(root + "/sweep.csv"));
  const auto no_axis = run_ncflab({"sweep", kQuickstart, "init.scale=0.03", "--out", root});
  EXPECT_EQ(no_axis.code, 2);
  const auto bad_range = run_ncflab({"sweep", kQuickstart, "seed=range(3,1,1)", "--out", root});
  EXPECT_EQ(bad_range.code, 2);
  EXPECT_THAT(bad_range.err, HasSubstr("range(start, stop, step)"));
  // A key twice (every point would run twice over), a value twice in one axis.
  const auto twice = run_ncflab({"sweep", kQuickstart, "seed=1,2", "seed=3,4", "--out", root});
  EXPECT_EQ(twice.code, 2);
  EXPECT_THAT(twice.err, HasSubstr("seed: expected each key once in a sweep"));
  const auto repeated = run_ncflab({"sweep", kQuickstart, "seed=1,2,1", "--out", root});
  EXPECT_EQ(repeated.code, 2);
  EXPECT_THAT(repeated.err, HasSubstr("seed: expected distinct values, found '1' twice"));
  EXPECT_FALSE(std::filesystem::exists(root + "/sweep.csv"));
}

}  // namespace
}  // namespace ncflab

// The command line run as a user runs it: exit codes (0, 2), one-line errors for
// bad input, and the validate summary with the model's degrees.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ncflab/cli/cli.h"
#include "ncflab/experiment/config.h"
#include "support.h"

namespace ncflab {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::CliResult;
using testing::kQuickstart;
using testing::read_json;
using testing::run_ncflab;

TEST(Cli, ValidatePrintsTheModelsDegrees) {
  const auto result = run_ncflab({"validate", kQuickstart});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("valid"));
  EXPECT_THAT(result.out, HasSubstr("q = [2, 1] (W1 first), total L = 3"));
  const auto deeper =
      run_ncflab({"validate", kQuickstart, "model.widths=[12,12]", "model.activation.p=2"});
  EXPECT_THAT(deeper.out, HasSubstr("q = [4, 2, 1] (W1 first), total L = 7"));
  const auto single =
      run_ncflab({"validate", kQuickstart, "model.kind=single_layer", "model.activation.alpha=0"});
  EXPECT_EQ(single.code, 0) << single.err;
  EXPECT_THAT(single.out, HasSubstr("single-layer H = sum_j sigma(w_j.x), no output weights, "
                                    "d = 10, k = 20, ReLU^2"));
  EXPECT_THAT(single.out, HasSubstr("q = [2] (W1 first), total L = 2"));
  EXPECT_THAT(single.out, HasSubstr("L = 2, no blow-up; escape time grows like log(1/delta)"));
}

TEST(Cli, EveryExperimentConfigIsValid) {
  int configs = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::string(NCFLAB_SOURCE_DIR) + "/experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    ++configs;
    const auto result = run_ncflab({"validate", entry.path().string()});
    EXPECT_EQ(result.code, 0) << entry.path() << ": " << result.err;
  }
  EXPECT_GE(configs, 8);  // experiments/ and experiments/paper/
  const auto single = run_ncflab(
      {"validate", std::string(NCFLAB_SOURCE_DIR) + "/experiments/single_layer_relu2.yaml"});
  EXPECT_THAT(single.out, HasSubstr("total L = 2"));
}

TEST(Cli, SingleLayerModelWithTwoWidthsExitsWithCode2) {
  const auto result =
      run_ncflab({"validate", kQuickstart, "model.kind=single_layer", "model.widths=[4,4]"});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("model.widths: expected exactly one hidden width [k]"));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(Cli, PrintConfigEchoesTheResolvedSettings) {
  const auto result = run_ncflab({"validate", kQuickstart, "--print-config", "train.step=0.5"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("step: 0.5"));
  EXPECT_THAT(result.out, HasSubstr("teacher_width: 2"));
}

TEST(Cli, ValidatePrintsEveryKeyWithTheKindOfValueItTakes) {
  const auto result = run_ncflab({"validate", kQuickstart, "--print-keys"});
  EXPECT_EQ(result.code, 0) << result.err;
  const auto keys = result.out.substr(result.out.find("# keys\n") + 7);
  std::istringstream lines(keys);
  std::vector<std::string> listed;
  for (std::string line; std::getline(lines, line);)
    listed.push_back(line.substr(0, line.find(':')));
  EXPECT_EQ(listed, config_key_paths());
  // The kinds the reader enforces: each one is what a wrong value is told it should be.
  EXPECT_THAT(keys, HasSubstr("train.step: number\n"));
  EXPECT_THAT(keys, HasSubstr("train.max_steps: integer\n"));
  EXPECT_THAT(keys, HasSubstr("train.stop_at_escape: boolean\n"));
  EXPECT_THAT(keys, HasSubstr("model.widths: list of integers\n"));
  EXPECT_THAT(keys, HasSubstr("name: string\n"));
  EXPECT_THAT(keys, HasSubstr("device: one of auto | cpu | cuda\n"));
  EXPECT_THAT(run_ncflab({"validate", kQuickstart, "train.max_steps=0.5"}).err,
              HasSubstr("expected an integer"));
  EXPECT_THAT(run_ncflab({"validate", kQuickstart, "train.step=x"}).err,
              HasSubstr("expected a finite number"));
}

TEST(Cli, VersionAndHelpSucceed) {
  const auto version = run_ncflab({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_THAT(version.out, HasSubstr("ncflab 0."));
  EXPECT_EQ(run_ncflab({"--help"}).code, 0);
  EXPECT_THAT(run_ncflab({"--help"}).out, HasSubstr("validate"));
}

/// Bad input: exit code 2 and exactly one line on stderr.
void expect_bad_input(const CliResult& result, const std::string& fragment) {
  EXPECT_EQ(result.code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr(fragment));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
}

TEST(Cli, EveryBadInputClassExitsWithCode2) {
  TempDir dir;
  const auto config_with = [&](const std::string& name, const std::string& yaml) {
    return dir.write(name, yaml);
  };
  expect_bad_input(run_ncflab({"validate", config_with("typo.yaml", "trian: {step: 1}\n")}),
                   "typo.yaml:1: trian: expected a known key");
  expect_bad_input(run_ncflab({"validate", config_with("type.yaml", "train: {step: x}\n")}),
                   "type.yaml:1: train.step: expected a finite number, found 'x'");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "init.scale=0"}),
                   "init.scale: expected a number > 0");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "model.widths=[0]"}), "model.widths");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "model.activation.p=0"}),
                   "model.activation.p");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "model.activation.alpha=2"}),
                   "model.activation.alpha");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "train.step=-1"}), "train.step");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "train.max_steps=0"}), "train.max_steps");
  expect_bad_input(run_ncflab({"validate", config_with("broken.yaml", "a: [1,\n")}),
                   "expected valid YAML");
  expect_bad_input(run_ncflab({"validate", dir.path("absent.yaml")}),
                   "absent.yaml: expected a readable YAML config file");
  expect_bad_input(run_ncflab({"validate", kQuickstart, "device=tpu"}),
                   "device: expected one of auto | cpu | cuda");
  expect_bad_input(run_ncflab({"bogus"}), "unknown command 'bogus'");
  expect_bad_input(run_ncflab({"validate"}), "config is required");
}

TEST(Cli, BadDataExitsWithCode2) {
  TempDir dir;
  const auto csv = [&](const std::string& text) {
    return "data.path=" + dir.write("data.csv", text);
  };
  const std::vector<std::string> as_csv = {"validate", kQuickstart, "data.source=csv"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = as_csv;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_ncflab(args);
  };
  expect_bad_input(with({csv("a,b,y\n1,2,3\n4,5\n")}), "data.csv:3: row: expected 3 cells");
  expect_bad_input(with({csv("a,b,y\n1,x,3\n")}),
                   "data.csv:2: column 'b': expected a number, found 'x'");
  expect_bad_input(with({csv("a,b,y\n1,inf,3\n")}), "column 'b': expected a finite number");
  expect_bad_input(with({csv("a,b,y\n1,2,3\n"), "data.label=target"}),
                   "data.label: expected a column named 'target'");
  expect_bad_input(with({csv("")}), "found an empty file");
  expect_bad_input(with({"data.path=" + dir.path("none.csv")}),
                   "data.path: expected a readable CSV file");
  expect_bad_input(with({csv("a,b,y\n1,2,0.5\n"), "loss=logistic"}), "expected labels in {-1, +1}");

  const auto good = with({csv("a,b,y\n1,2,1\n3,4,-1\n5,6,1\n"), "loss=logistic"});
  EXPECT_EQ(good.code, 0) << good.err;
  EXPECT_THAT(good.out, HasSubstr("d = 2"));
}

TEST(Cli, KktWritesTheSpecKeysAndRefusesToOverwrite) {
  TempDir dir;
  const auto out = dir.path("kkt");
  const auto result = run_ncflab(
      {"kkt", kQuickstart, "kkt.restarts=4", "data.n=20", "model.widths=[4]", "--out", out});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("rank-one share"));
  std::ifstream file(out + "/kkt.json");
  ASSERT_TRUE(file);
  const auto report = nlohmann::json::parse(file);
  EXPECT_EQ(report["homogeneity"]["total"], 3);
  EXPECT_EQ(report["homogeneity"]["layers"], nlohmann::json::array({2, 1}));
  ASSERT_TRUE(report.contains("rank_one_share"));
  ASSERT_FALSE(report["points"].empty());
  double previous = std::numeric_limits<double>::infinity();
  for (const auto& point : report["points"]) {
    for (const char* key : {"ncf", "residual", "kink_residual", "rank_one", "layers"}) {
      EXPECT_TRUE(point.contains(key)) << key;
    }
    EXPECT_LE(point["ncf"].get<double>(), previous);  // highest N first
    previous = point["ncf"].get<double>();
    EXPECT_LT(point["residual"].get<double>(), 1e-10);
    EXPECT_TRUE(point["layers"][0].contains("norm2"));
    EXPECT_TRUE(point["layers"][0].contains("sv_ratio"));
  }
  EXPECT_TRUE(std::filesystem::exists(out + "/config.yaml"));
  EXPECT_TRUE(std::filesystem::exists(out + "/kkt_points.pt"));
  expect_bad_input(run_ncflab({"kkt", kQuickstart, "--out", out}),
                   "(or --overwrite to replace them)");
  EXPECT_EQ(run_ncflab({"kkt", kQuickstart, "kkt.restarts=2", "--out", out, "--overwrite"}).code,
            0);
}

TEST(Cli, FlowWritesBlowupTimeTrajectoryAndDirection) {
  TempDir dir;
  const auto out = dir.path("flow");
  const auto result = run_ncflab(
      {"flow", kQuickstart, "ensemble.seeds=2", "data.n=20", "model.widths=[4]", "--out", out});
  ASSERT_EQ(result.code, 0) << result.err;
  std::ifstream file(out + "/flow.json");
  ASSERT_TRUE(file);
  const auto report = nlohmann::json::parse(file);
  for (const char* key :
       {"outcome", "blowup_time", "ncf", "residual", "homogeneity", "members", "log_norm"}) {
    EXPECT_TRUE(report.contains(key)) << key;
  }
  ASSERT_EQ(report["members"].size(), 2u);
  EXPECT_EQ(report["homogeneity"]["total"], 3);
  for (const auto& member : report["members"]) {
    ASSERT_EQ(member["outcome"], "blew_up");
    // At blow-up the direction is a non-negative KKT point (to flow.direction_tol).
    EXPECT_GT(member["blowup_time"].get<double>(), 0.0);
    EXPECT_GT(member["ncf"].get<double>(), 0.0);
    EXPECT_LE(member["residual"].get<double>(), 1e-10);
  }
  std::ifstream csv(out + "/flow_trajectory.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "member,time,norm,ncf,residual");
  EXPECT_TRUE(std::filesystem::exists(out + "/flow_direction.pt"));

  // A run's reference flow is the same integration from the same w0: its summary reports
  // the same T* and what it cost, step for step (its sample rows come from interpolation).
  const auto run_dir = dir.path("run");
  const auto run = run_ncflab({"run", kQuickstart, "ensemble.seeds=2", "data.n=20",
                               "model.widths=[4]", "train.max_steps=10", "--out", run_dir});
  ASSERT_EQ(run.code, 0) << run.err;
  const auto summary = read_json(run_dir + "/summary.json");
  ASSERT_EQ(summary["members"].size(), 2u);
  for (size_t s = 0; s < 2; ++s) {
    const auto& flow = report["members"][s];
    const auto& reference = summary["members"][s]["ncf_flow"];
    EXPECT_EQ(reference["blowup_time"], flow["blowup_time"]) << "member " << s;
    EXPECT_GT(flow["accepted_steps"].get<int64_t>(), 10) << "member " << s;
    EXPECT_EQ(reference["accepted_steps"], flow["accepted_steps"]) << "member " << s;
    EXPECT_EQ(reference["rejected_steps"], flow["rejected_steps"]) << "member " << s;
  }
}

TEST(Cli, FlowReportsAStallAtDeadUnitsWithItsNorm) {
  // One row x = (1, 0), y = −1, ReLU², one unit: N = −v·max(w1, 0)². A flow that kills the
  // unit (w1 → 0 with v > w1/√2) stops at a non-zero critical point of N: a stall, whose
  // ‖u*‖ the conservation law v² − w1²/2 = const fixes (SPEC §1; checked in closed form
  // in NcfFlow.StallsAtTheNormFixedByItsConservationLaws). Otherwise it blows up.
  TempDir dir;
  const auto data = dir.path("row.csv");
  std::ofstream(data) << "x1,x2,y\n1,0,-1\n";
  int stalled = 0;
  for (int seed = 0; seed < 8; ++seed) {
    const auto out = dir.path("flow" + std::to_string(seed));
    const auto result =
        run_ncflab({"flow", kQuickstart, "data.source=csv", "data.path=" + data, "model.widths=[1]",
                    "model.activation.alpha=0", "seed=" + std::to_string(seed), "--out", out});
    ASSERT_EQ(result.code, 0) << result.err;
    const auto report = nlohmann::json::parse(std::ifstream(out + "/flow.json"));
    if (report["outcome"] != "stalled") {
      EXPECT_EQ(report["outcome"], "blew_up") << "seed " << seed;
      continue;
    }
    ++stalled;
    EXPECT_TRUE(report["blowup_time"].is_null());
    EXPECT_NEAR(report["ncf"].get<double>(), 0.0, 1e-12);
    // ‖u*‖² = w2² + v² − w1²/2 ≤ ‖w0‖² = 1 (w1 ≤ 0 from the start: nothing moves, ‖u*‖ = 1).
    EXPECT_GT(report["norm"].get<double>(), 0.1);
    EXPECT_LE(report["norm"].get<double>(), 1.0 + 1e-12);
    EXPECT_LE(report["gradient_ratio"].get<double>(), 1e-10);
    EXPECT_THAT(result.out, HasSubstr("stalled"));
  }
  EXPECT_GT(stalled, 0) << "no seed stalled: the test checks nothing";
}

TEST(Cli, KktAndFlowHandleASingleLayerModel) {
  TempDir dir;
  const auto config = std::string(NCFLAB_SOURCE_DIR) + "/experiments/single_layer_relu2.yaml";
  const auto kkt = run_ncflab({"kkt", config, "kkt.restarts=4", "--out", dir.path("kkt")});
  ASSERT_EQ(kkt.code, 0) << kkt.err;
  EXPECT_THAT(kkt.out, HasSubstr("starts on single-layer H = sum_j sigma(w_j.x)"));
  const auto points = nlohmann::json::parse(std::ifstream(dir.path("kkt") + "/kkt.json"));
  EXPECT_EQ(points["homogeneity"], nlohmann::json({{"total", 2}, {"layers", {2}}}));
  ASSERT_FALSE(points["points"].empty());
  for (const auto& point : points["points"]) {
    EXPECT_LT(point["residual"].get<double>(), 1e-10);
    ASSERT_EQ(point["layers"].size(), 1u);  // W1 alone, holding all of ‖u‖² = 1
    EXPECT_NEAR(point["layers"][0]["norm2"].get<double>(), 1.0, 1e-12);
    ASSERT_EQ(point["hidden"].size(), 1u);  // its units
    EXPECT_EQ(point["input_direction"].size(), 2u);
  }
  const auto flow = run_ncflab({"flow", config, "--out", dir.path("flow")});
  ASSERT_EQ(flow.code, 0) << flow.err;
  const auto report = nlohmann::json::parse(std::ifstream(dir.path("flow") + "/flow.json"));
  EXPECT_EQ(report["outcome"], "blew_up");  // L = 2: ‖u‖ grows exponentially, no T*
  EXPECT_TRUE(report["blowup_time"].is_null());
  EXPECT_GT(report["escape_time"].get<double>(), 0.0);
  // Where it escapes, the direction is close to a KKT point of the search.
  EXPECT_NEAR(report["ncf"].get<double>(), points["points"][0]["ncf"].get<double>(),
              1e-3 * report["ncf"].get<double>());
}

}  // namespace
}  // namespace ncflab

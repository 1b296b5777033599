// `ncflab report` on real run, sweep, kkt and flow directories: exit codes, valid PNG
// figures, and report.md holding the numbers of summary.json / kkt.json / flow.json.
// Skipped where Debian's /usr/bin/python3 cannot import matplotlib.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support.h"

namespace ncflab {
namespace {

using ::testing::HasSubstr;
using testing::kQuickstart;
using testing::read_json;
using testing::run_ncflab;
using testing::TempDir;
using testing::with;

const std::string kPython = "/usr/bin/python3";

bool python_has_matplotlib() {
  static const bool has =
      std::system((kPython + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0;
  return has;
}

const std::string kNoMatplotlib =
    kPython + " cannot import matplotlib (apt-get install python3-matplotlib)";

// A quick version of the quickstart (L = 3) that escapes in a few hundred steps.
const std::vector<std::string> kQuickQuickstart = {"data.n=30", "model.widths=[5]",
                                                   "hooks.progress=false"};

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

/// `ncflab report DIR --python /usr/bin/python3`, which must succeed.
void report(const std::string& directory) {
  const auto result = run_ncflab({"report", directory, "--python", kPython});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(directory + "/report/report.md"));
}

/// A non-empty PNG: the 8-byte signature, then an IHDR chunk with a non-zero size.
void expect_png(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  ASSERT_TRUE(file) << path << " is missing";
  std::string head(24, '\0');
  file.read(head.data(), static_cast<std::streamsize>(head.size()));
  ASSERT_EQ(file.gcount(), 24) << path;
  EXPECT_EQ(head.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  EXPECT_EQ(head.substr(12, 4), "IHDR") << path;
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  const uint32_t width = (byte(16) << 24) | (byte(17) << 16) | (byte(18) << 8) | byte(19);
  EXPECT_GT(width, 100u) << path;
  EXPECT_GT(std::filesystem::file_size(path), 5000u) << path;
}

/// The rows of the first Markdown table after `heading` (without header and rule).
std::vector<std::string> table_rows(const std::string& markdown, const std::string& heading) {
  std::stringstream lines(markdown.substr(markdown.find(heading)));
  std::vector<std::string> rows;
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| ", 0) == 0) {
      in_table = true;
      rows.push_back(line);
    } else if (in_table) {
      break;
    }
  }
  return rows.size() >= 2 ? std::vector<std::string>(rows.begin() + 2, rows.end()) : rows;
}

// Markdown cells hold numbers as report.py writes them: integers whole, floats to 6 digits.
std::string cell(double value) { return fmt::format("| {:.6g} |", value); }
std::string cell(int64_t value) { return fmt::format("| {} |", value); }

TEST(Report, RunOfAnEnsembleHasFiguresAndEachMembersNumbers) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto out = dir.path("run");
  ASSERT_EQ(run_ncflab(with(with({"run", kQuickstart}, kQuickQuickstart),
                            {"init.scale=0.01", "ensemble.seeds=2", "--out", out}))
                .code,
            0);
  report(out);
  for (const char* figure :
       {"norm.png", "loss.png", "ncf.png", "residual.png", "cos_to_flow.png", "layers.png"}) {
    expect_png(out + "/report/" + figure);
  }
  const auto markdown = read_text(out + "/report/report.md");
  const auto summary = read_json(out + "/summary.json");
  const auto rows = table_rows(markdown, "## Escape");
  ASSERT_EQ(rows.size(), 2u) << markdown;
  for (size_t s = 0; s < 2; ++s) {
    const auto& member = summary["members"][s];
    ASSERT_EQ(member["status"], "escaped");
    EXPECT_EQ(rows[s].rfind(fmt::format("| {} | escaped |", s), 0), 0u) << rows[s];
    EXPECT_THAT(rows[s], HasSubstr(cell(member["escape"]["step"].get<int64_t>())));
    EXPECT_THAT(rows[s],
                HasSubstr(cell(member["escape"]["rescaled_time_over_blowup_time"].get<double>())));
    EXPECT_THAT(rows[s], HasSubstr(cell(member["ncf_flow"]["blowup_time"].get<double>())));
    EXPECT_THAT(rows[s], HasSubstr(cell(member["final"]["cos_to_flow"].get<double>())));
  }
  EXPECT_EQ(table_rows(markdown, "## Layers").size(), 4u);  // 2 members × 2 layers
  for (const char* figure : {"(norm.png)", "(layers.png)"})
    EXPECT_THAT(markdown, HasSubstr(figure));
  // A second report replaces the first.
  report(out);
}

TEST(Report, SweepTabulatesEveryRunAndDrawsTheEscapeLaw) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto root = dir.path("sweep");
  ASSERT_EQ(run_ncflab(with(with({"sweep", kQuickstart}, kQuickQuickstart),
                            {"init.scale=0.03,0.01", "--out", root}))
                .code,
            0);
  report(root);
  for (const char* figure : {"escape_law.png", "cos_at_escape.png", "norm.png"}) {
    expect_png(root + "/report/" + figure);
  }
  const auto markdown = read_text(root + "/report/report.md");
  const auto rows = table_rows(markdown, "## Runs");
  ASSERT_EQ(rows.size(), 2u) << markdown;
  for (const auto& [row, name] :
       {std::pair{rows[0], "000_init.scale=0.03"}, {rows[1], "001_init.scale=0.01"}}) {
    const auto summary = read_json(root + "/" + name + "/summary.json");
    EXPECT_EQ(row.rfind(std::string("| ") + name + " |", 0), 0u) << row;
    EXPECT_THAT(row, HasSubstr(cell(summary["escape"]["step"].get<int64_t>())));
    EXPECT_THAT(row,
                HasSubstr(cell(summary["escape"]["rescaled_time_over_blowup_time"].get<double>())));
  }
}

TEST(Report, SweepOverAnotherKeyTabulatesItsValues) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto root = dir.path("sweep");
  ASSERT_EQ(
      run_ncflab(with(with({"sweep", kQuickstart}, kQuickQuickstart),
                      {"init.scale=0.01", "model.activation={alpha: 0.1, p: 2},{alpha: 0.3, p: 2}",
                       "--out", root}))
          .code,
      0);
  report(root);
  expect_png(root + "/report/norm.png");
  EXPECT_FALSE(std::filesystem::exists(root + "/report/escape_law.png"));  // one δ: no law to draw
  const auto rows = table_rows(read_text(root + "/report/report.md"), "## Runs");
  ASSERT_EQ(rows.size(), 2u);
  // The whole value, though sweep.csv splits it at its comma.
  EXPECT_THAT(rows[0], HasSubstr("| {alpha: 0.1, p: 2} |"));
  EXPECT_THAT(rows[1], HasSubstr("| {alpha: 0.3, p: 2} |"));
}

TEST(Report, KktPointsWithSpectra) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto out = dir.path("kkt");
  ASSERT_EQ(run_ncflab({"kkt", kQuickstart, "kkt.restarts=4", "data.n=20", "model.widths=[4]",
                        "--out", out})
                .code,
            0);
  report(out);
  for (const char* figure : {"ncf.png", "residual.png", "sv_ratio.png", "spectra.png"}) {
    expect_png(out + "/report/" + figure);
  }
  const auto markdown = read_text(out + "/report/report.md");
  const auto kkt = read_json(out + "/kkt.json");
  EXPECT_THAT(markdown, HasSubstr(fmt::format("| rank_one_share {}",
                                              cell(kkt["rank_one_share"].get<double>()))));
  const auto rows = table_rows(markdown, "## Points");
  ASSERT_EQ(rows.size(), kkt["points"].size());
  EXPECT_THAT(rows[0], HasSubstr(cell(kkt["points"][0]["ncf"].get<double>())));
}

TEST(Report, FlowTrajectory) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto out = dir.path("flow");
  ASSERT_EQ(run_ncflab({"flow", kQuickstart, "ensemble.seeds=2", "data.n=20", "model.widths=[4]",
                        "--out", out})
                .code,
            0);
  report(out);
  expect_png(out + "/report/flow.png");
  const auto flow = read_json(out + "/flow.json");
  const auto rows = table_rows(read_text(out + "/report/report.md"), "| member |");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_THAT(rows[1], HasSubstr(cell(flow["members"][1]["blowup_time"].get<double>())));
}

TEST(Report, UnknownDirectoryExitsWith2) {
  if (!python_has_matplotlib()) GTEST_SKIP() << kNoMatplotlib;
  TempDir dir;
  const auto empty = run_ncflab({"report", dir.path(), "--python", kPython});
  EXPECT_EQ(empty.code, 2);
  EXPECT_THAT(empty.err, HasSubstr(dir.path() + ": expected a run directory"));
  EXPECT_FALSE(std::filesystem::exists(dir.path("report")));
  const auto missing = run_ncflab({"report", dir.path("nothing"), "--python", kPython});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("nothing: expected a directory"));
}

TEST(Report, PythonWithoutMatplotlibSaysWhatToInstall) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  TempDir dir;
  // -S leaves out site-packages, where matplotlib lives.
  const auto python = dir.write("python-bare", "#!/bin/sh\nexec " + kPython + " -S \"$@\"\n");
  ASSERT_EQ(chmod(python.c_str(), 0755), 0);
  const auto result = run_ncflab({"report", dir.path(), "--python", python});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.err, HasSubstr("apt-get install python3-matplotlib"));
}

TEST(Report, AnInterpreterThatCannotRunIsBadInput) {
  TempDir dir;
  const auto result = run_ncflab({"report", dir.path(), "--python", dir.path("no-python")});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("--python: expected a Python 3 interpreter"));
}

}  // namespace
}  // namespace ncflab

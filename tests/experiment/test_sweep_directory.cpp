// The sweep directory: tasks cover the plan, plan.json reads back as written, and a sweep
// missing one point's result reruns exactly that point (through `ncflab sweep --resume`)
// to the same numbers, leaving the finished points untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>

#include "ncflab/core/signals.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/sweep_directory.h"
#include "support.h"

namespace ncflab {
namespace {

using ::testing::HasSubstr;
using testing::kQuickstart;
using testing::read_json;
using testing::run_ncflab;
using testing::TempDir;
using testing::with;

const std::vector<std::string> kQuickGrid = {
    "data.n=30", "model.widths=[5]", "hooks.progress=false", "init.scale=0.03,0.01", "seed=1,2,3"};

TEST(SweepDirectory, TasksShareEveryBatchOnceInOrderAndEvenly) {
  for (size_t batches : {1u, 2u, 7u, 64u, 1001u}) {
    for (size_t tasks : {0u, 1u, 3u, 7u, 64u, 2000u}) {
      const auto shares = split_into_tasks(batches, tasks);
      const size_t expected = tasks == 0 ? batches : std::min(tasks, batches);
      ASSERT_EQ(shares.size(), expected) << batches << " batches, " << tasks << " tasks";
      size_t next = 0;
      size_t smallest = batches;
      size_t largest = 0;
      for (const auto& share : shares) {
        EXPECT_FALSE(share.empty());
        for (size_t batch : share) EXPECT_EQ(batch, next++);
        smallest = std::min(smallest, share.size());
        largest = std::max(largest, share.size());
      }
      EXPECT_EQ(next, batches);
      EXPECT_LE(largest - smallest, 1u);
    }
  }
}

TEST(SweepDirectory, PlanReadsBackAndPointsFinishOneBatchAtATime) {
  TempDir dir;
  const auto root = dir.path("sweep");
  const auto sweep =
      run_ncflab(with(with({"sweep", kQuickstart}, kQuickGrid), {"--tasks", "2", "--out", root}));
  ASSERT_EQ(sweep.code, 0) << sweep.err;
  const auto manifest = read_sweep_plan(root);
  ASSERT_EQ(manifest.points.size(), 6u);
  ASSERT_EQ(manifest.batches.size(), 3u);  // one per seed: the δ of a seed train together
  for (const auto& batch : manifest.batches) EXPECT_EQ(batch.size(), 2u);
  EXPECT_EQ(manifest.tasks, split_into_tasks(3, 2));
  EXPECT_EQ(manifest.axes.front().first, "init.scale");
  EXPECT_EQ(manifest.names[4], "004_init.scale=0.01_seed=2");
  for (size_t i = 0; i < manifest.points.size(); ++i)
    EXPECT_TRUE(point_finished(root, manifest, i));
  EXPECT_FALSE(std::filesystem::exists(root + "/checkpoints/batch_000.pt"));

  // A lost result (a task killed before it wrote it) makes its point, batch and task
  // unfinished, and only those.
  const auto lost = std::filesystem::path(root) / manifest.names[4];
  const auto kept = std::filesystem::path(root) / manifest.names[0];
  const auto reference = read_json((lost / "summary.json").string());
  const auto kept_time = std::filesystem::last_write_time(kept / "weights_final.pt");
  std::filesystem::remove(lost / "summary.json");
  EXPECT_FALSE(point_finished(root, manifest, 4));
  EXPECT_FALSE(batch_finished(root, manifest, 1));
  EXPECT_TRUE(batch_finished(root, manifest, 0));
  EXPECT_FALSE(task_finished(root, manifest, 0));  // tasks: {0, 1}, {2}
  EXPECT_TRUE(task_finished(root, manifest, 1));

  const auto collect = run_ncflab({"sweep", "--collect", root});
  EXPECT_EQ(collect.code, 1);
  EXPECT_THAT(collect.out, HasSubstr("5 of 6 runs finished"));
  EXPECT_THAT(collect.out, HasSubstr(manifest.names[4]));

  const auto resume = run_ncflab({"sweep", "--resume", root});
  ASSERT_EQ(resume.code, 0) << resume.err;
  EXPECT_THAT(resume.out, HasSubstr("1 of 2 tasks not finished"));
  EXPECT_THAT(resume.out, HasSubstr("6 of 6 runs finished"));
  const auto rerun = read_json((lost / "summary.json").string());
  EXPECT_EQ(rerun["final"], reference["final"]);
  EXPECT_EQ(rerun["escape"], reference["escape"]);
  EXPECT_EQ(std::filesystem::last_write_time(kept / "weights_final.pt"), kept_time);
}

// Ctrl-C while a large grid's run directories are written: a stop between two of them
// ("sweep planning"), and no plan.json, so the half-written sweep is not resumable.
TEST(SweepDirectory, SignalWhileWritingTheRunDirectoriesStopsBeforeThePlan) {
  TempDir dir;
  const std::filesystem::path root = dir.path("sweep");
  std::filesystem::create_directories(root);
  const SweepPlan plan = plan_sweep(kQuickstart, kQuickGrid, false);
  ASSERT_EQ(plan.points.size(), 6u);
  size_t written = 0;
  const auto signal_after_two = [&](size_t done, size_t total) {
    EXPECT_EQ(total, 6u);
    written = done;
    if (done == 2) std::raise(SIGINT);
  };
  InterruptHandler handler;
  try {
    write_sweep_plan(plan, kQuickstart, kQuickGrid, 0, root, signal_after_two);
    ADD_FAILURE() << "no stop on SIGINT";
  } catch (const Interrupted& stop) {
    EXPECT_EQ(stop.signal(), SIGINT);
    EXPECT_THAT(stop.what(), HasSubstr("during sweep planning"));
  }
  clear_interrupt();
  EXPECT_EQ(written, 2u);
  EXPECT_FALSE(std::filesystem::exists(root / kSweepPlanFile));
  EXPECT_TRUE(std::filesystem::exists(root / point_name(1, plan.points[1]) / kConfigFile));
  EXPECT_FALSE(std::filesystem::exists(root / point_name(2, plan.points[2])));
  EXPECT_THAT(run_ncflab({"sweep", "--resume", root.string()}).err, HasSubstr("plan.json"));

  // Undisturbed, every directory and then the plan.
  written = 0;
  write_sweep_plan(plan, kQuickstart, kQuickGrid, 0, root,
                   [&](size_t done, size_t /*total*/) { written = done; });
  EXPECT_EQ(written, 6u);
  EXPECT_EQ(read_sweep_plan(root).points.size(), 6u);
}

TEST(SweepDirectory, RefusesToPlanOverASweepAndNamesTheWayOn) {
  TempDir dir;
  const auto root = dir.path("sweep");
  ASSERT_EQ(run_ncflab(with(with({"sweep", kQuickstart}, kQuickGrid), {"--out", root})).code, 0);
  const auto again = run_ncflab(with(with({"sweep", kQuickstart}, kQuickGrid), {"--out", root}));
  EXPECT_EQ(again.code, 2);
  EXPECT_THAT(again.err, HasSubstr("ncflab sweep --resume " + root));
}

TEST(SweepDirectory, BadArgumentsAreCleanRefusals) {
  TempDir dir;
  const auto root = dir.path("sweep");
  ASSERT_EQ(run_ncflab(with(with({"sweep", kQuickstart}, kQuickGrid), {"--out", root})).code, 0);
  const auto expect_refusal = [](const std::vector<std::string>& args, const std::string& what) {
    const auto result = run_ncflab(args);
    EXPECT_EQ(result.code, 2) << result.out << result.err;
    EXPECT_THAT(result.err, HasSubstr(what));
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  };
  expect_refusal({"sweep", "--task", "3", root}, "a task of the plan, 0 to 2");
  expect_refusal({"sweep", "--resume", dir.path("nothing")}, "a sweep directory holding plan.json");
  expect_refusal({"sweep", "--resume", root, "--collect", root}, "one of --resume");
  expect_refusal({"sweep", "--resume", root, "--jobs", "2"}, "--launcher local");
  expect_refusal({"sweep", "--resume", root, "--launcher", "pbs"}, "local or slurm");
  expect_refusal({"sweep", "--resume", root, "--sbatch=--partition=x"}, "--launcher slurm");
  expect_refusal({"sweep", "--collect", root, kQuickstart}, "a sweep directory only");
}

}  // namespace
}  // namespace ncflab

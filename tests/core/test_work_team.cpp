// WorkTeam: every item of every batch runs exactly once, on a thread index in range, with
// batches of any size back to back; an exception reaches the caller and the team goes on.
#include <atomic>
#include <stdexcept>
#include <vector>

#include "ncflab/core/work_team.h"
#include "support.h"

namespace ncflab {
namespace {

TEST(WorkTeam, EveryItemRunsOnceInEveryBatch) {
  for (const int threads : {1, 2, 5}) {
    WorkTeam team(threads);
    EXPECT_EQ(team.threads(), threads);
    for (const int64_t count : {0, 1, 3, 1000, 7, 0, 64}) {
      for (int repeat = 0; repeat < 50; ++repeat) {
        std::vector<std::atomic<int>> runs(static_cast<size_t>(count));
        std::atomic<bool> thread_in_range{true};
        team.run(count, [&](int64_t item, int thread) {
          runs[static_cast<size_t>(item)].fetch_add(1);
          if (thread < 0 || thread >= threads) thread_in_range = false;
        });
        for (int64_t item = 0; item < count; ++item) {
          ASSERT_EQ(runs[static_cast<size_t>(item)].load(), 1)
              << "item " << item << " of " << count << ", " << threads << " threads";
        }
        ASSERT_TRUE(thread_in_range.load());
      }
    }
  }
}

TEST(WorkTeam, AnExceptionReachesTheCallerAndTheTeamGoesOn) {
  WorkTeam team(3);
  std::atomic<int> ran{0};
  EXPECT_THROW(team.run(100,
                        [&](int64_t item, int) {
                          ran.fetch_add(1);
                          if (item == 37) throw std::runtime_error("item 37");
                        }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 100);  // the rest of the batch still ran
  std::atomic<int64_t> sum{0};
  team.run(10, [&](int64_t item, int) { sum.fetch_add(item); });
  EXPECT_EQ(sum.load(), 45);
}

}  // namespace
}  // namespace ncflab

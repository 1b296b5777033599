// A small team of threads for independent items of work (the fused engine's members),
// built to survive a shared machine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ncflab {

/// Runs batches of independent items on the calling thread and `threads − 1` helpers. The
/// caller takes items too and never waits for a helper that has not started: when another
/// process holds a core, a descheduled helper costs nothing, where an OpenMP team waits at
/// its barrier for the helper's next time slice (milliseconds, for steps of microseconds).
/// Helpers spin briefly between batches, then sleep.
class WorkTeam {
 public:
  /// One work item: `item` in [0, count), `thread` in [0, threads()) names the thread (for
  /// per-thread scratch).
  using Work = std::function<void(int64_t item, int thread)>;

  explicit WorkTeam(int threads);
  ~WorkTeam();
  WorkTeam(const WorkTeam&) = delete;
  WorkTeam& operator=(const WorkTeam&) = delete;

  int threads() const { return static_cast<int>(helpers_.size()) + 1; }

  /// work(item, thread) for every item in [0, count), each once; returns when all are done.
  /// An exception from an item is rethrown here (the first one; the rest of the batch still
  /// runs). One batch at a time.
  void run(int64_t count, const Work& work);

 private:
  void help(int thread);
  // Takes and runs items while any are left; `lock` held on entry and exit.
  void take_items(std::unique_lock<std::mutex>& lock, int thread);

  std::mutex mutex_;
  std::condition_variable wake_;      // helpers asleep: a new batch, or stop
  std::condition_variable finished_;  // the caller: helpers' items done
  // Guarded by mutex_.
  uint64_t batch_ = 0;
  const Work* work_ = nullptr;
  int64_t count_ = 0;
  int64_t next_ = 0;
  int running_ = 0;   // items being run by helpers
  int sleeping_ = 0;  // helpers waiting on wake_
  bool stop_ = false;
  std::exception_ptr error_;
  std::atomic<uint64_t> published_{0};  // batch_, for helpers to spin on without the lock
  std::vector<std::thread> helpers_;
};

}  // namespace ncflab

// WorkTeam: a mutex-guarded item counter, helpers that spin on a batch number and then
// sleep, and a caller that waits only for items a helper has actually taken.
#include "ncflab/core/work_team.h"

#include <chrono>
#include <utility>

namespace ncflab {
namespace {

// How long a helper looks for the next batch before it sleeps: longer than the gap between
// two steps of a small net (a few microseconds), far shorter than a time slice.
constexpr auto kSpin = std::chrono::microseconds(50);

}  // namespace

WorkTeam::WorkTeam(int threads) {
  for (int t = 1; t < threads; ++t) helpers_.emplace_back([this, t] { help(t); });
}

WorkTeam::~WorkTeam() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  published_.store(~uint64_t{0}, std::memory_order_release);
  wake_.notify_all();
  for (auto& helper : helpers_) helper.join();
}

void WorkTeam::run(int64_t count, const Work& work) {
  std::unique_lock<std::mutex> lock(mutex_);
  work_ = &work;
  count_ = count;
  next_ = 0;
  error_ = nullptr;
  ++batch_;
  published_.store(batch_, std::memory_order_release);
  if (sleeping_ > 0) wake_.notify_all();
  take_items(lock, 0);
  // Only items a helper took are waited for; one that never woke up holds nothing.
  finished_.wait(lock, [this] { return running_ == 0; });
  work_ = nullptr;
  count_ = 0;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void WorkTeam::take_items(std::unique_lock<std::mutex>& lock, int thread) {
  while (next_ < count_) {
    const int64_t item = next_++;
    const Work* work = work_;
    if (thread != 0) ++running_;
    lock.unlock();
    try {
      (*work)(item, thread);
    } catch (...) {
      lock.lock();
      if (!error_) error_ = std::current_exception();
      lock.unlock();
    }
    lock.lock();
    if (thread != 0 && --running_ == 0) finished_.notify_one();
  }
}

void WorkTeam::help(int thread) {
  uint64_t seen = 0;
  for (;;) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    while (published_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < deadline) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (!stop_ && batch_ == seen) {
      ++sleeping_;
      wake_.wait(lock, [&] { return stop_ || batch_ != seen; });
      --sleeping_;
    }
    if (stop_) return;
    seen = batch_;
    take_items(lock, thread);
  }
}

}  // namespace ncflab

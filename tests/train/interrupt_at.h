// A hook that raises SIGINT at a chosen iteration, as a user pressing Ctrl-C would: the
// trainer tests' way into checkpoints and --resume.
#pragma once

#include <csignal>
#include <cstdint>

#include "ncflab/train/hook.h"

namespace ncflab::testing {

class InterruptAt final : public TrainHook {
 public:
  explicit InterruptAt(int64_t step) : step_(step) {}
  void on_step(TrainState& state) override {
    if (state.step == step_) std::raise(SIGINT);
  }
  int64_t next_step(int64_t step) const override { return step < step_ ? step_ : never_again; }

 private:
  int64_t step_;
};

}  // namespace ncflab::testing

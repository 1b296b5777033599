// When a run saves its state: every checkpoint_every steps and on an interrupt. What a
// checkpoint holds and where it goes is the caller's `save` (experiment/checkpoint.h).
#pragma once

#include <cstdint>
#include <functional>

#include "ncflab/train/hook.h"

namespace ncflab {

/// Writes a checkpoint every `every` steps (0: never) and when the run is interrupted,
/// through `save` (which must write atomically).
class CheckpointHook final : public TrainHook {
 public:
  CheckpointHook(int64_t every, std::function<void(const TrainState&)> save)
      : every_(every), save_(std::move(save)) {}
  void on_step(TrainState& state) override;
  int64_t next_step(int64_t step) const override {
    return every_ > 0 ? (step / every_ + 1) * every_ : never_again;
  }
  void on_end(TrainState& state) override;

 private:
  int64_t every_;
  int64_t start_step_ = -1;
  std::function<void(const TrainState&)> save_;
};

}  // namespace ncflab

// Checkpoints at fixed steps and on an interrupt; never at the step a run started from.
#include "ncflab/train/hooks/checkpoint_hook.h"

namespace ncflab {

void CheckpointHook::on_step(TrainState& state) {
  if (start_step_ < 0) start_step_ = state.step;
  // Not at the step the run started from: that state is already on disk (or is w_0).
  if (every_ > 0 && state.step % every_ == 0 && state.step != start_step_) save_(state);
}

void CheckpointHook::on_end(TrainState& state) {
  if (state.any(MemberStatus::interrupted)) save_(state);
}

}  // namespace ncflab

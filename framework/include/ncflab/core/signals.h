// SIGINT/SIGTERM → a flag the trainer polls once per step, so an interrupted run
// flushes its metrics and writes a checkpoint instead of dying mid-write.
#pragma once

namespace ncflab {

/// Installs the handlers while alive and restores the previous ones after; clears the flag.
class InterruptHandler {
 public:
  InterruptHandler();
  ~InterruptHandler();
  InterruptHandler(const InterruptHandler&) = delete;
  InterruptHandler& operator=(const InterruptHandler&) = delete;
};

/// The signal received since the handler was installed (SIGINT, SIGTERM), or 0.
int interrupt_signal();

/// Forgets a received signal (tests; a resumed run).
void clear_interrupt();

}  // namespace ncflab

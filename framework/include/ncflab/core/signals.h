// SIGINT/SIGTERM → a flag the trainer polls once per step, so an interrupted run
// flushes its metrics and writes a checkpoint instead of dying mid-write.
#pragma once

#include <stdexcept>
#include <string>

namespace ncflab {

/// Installs the handlers while alive and restores the previous ones after. The outermost
/// one clears the flag; nested ones (a command's, then its trainer's) keep a signal that
/// arrived before them, so it is never lost between two phases of a command.
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

/// A computation stopped by SIGINT or SIGTERM between two of its steps: what() reads
/// "interrupted by SIGINT during the NCF flow"; the command exits 128 + signal.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& during);
  int signal() const { return signal_; }

 private:
  int signal_;
};

/// Throws Interrupted when SIGINT or SIGTERM has arrived (long loops call it each step).
void stop_if_interrupted(const char* during);

}  // namespace ncflab

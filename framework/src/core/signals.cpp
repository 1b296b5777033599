// Signal handling: the handler only stores the signal number (async-signal-safe).
#include "ncflab/core/signals.h"

#include <atomic>
#include <csignal>

namespace ncflab {
namespace {

std::atomic<int> received{0};

extern "C" void record_signal(int signal) { received.store(signal); }

using Handler = void (*)(int);
Handler previous_interrupt = SIG_DFL;
Handler previous_terminate = SIG_DFL;

}  // namespace

InterruptHandler::InterruptHandler() {
  received.store(0);
  previous_interrupt = std::signal(SIGINT, record_signal);
  previous_terminate = std::signal(SIGTERM, record_signal);
}

InterruptHandler::~InterruptHandler() {
  std::signal(SIGINT, previous_interrupt);
  std::signal(SIGTERM, previous_terminate);
}

int interrupt_signal() { return received.load(); }

void clear_interrupt() { received.store(0); }

}  // namespace ncflab

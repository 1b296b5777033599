// Signal handling: the handler only stores the signal number (async-signal-safe).
#include "ncflab/core/signals.h"

#include <fmt/format.h>

#include <atomic>
#include <csignal>

namespace ncflab {
namespace {

std::atomic<int> received{0};

extern "C" void record_signal(int signal) { received.store(signal); }

using Handler = void (*)(int);
Handler previous_interrupt = SIG_DFL;
Handler previous_terminate = SIG_DFL;
int depth = 0;  // handlers alive; only the outermost installs and restores

}  // namespace

InterruptHandler::InterruptHandler() {
  if (depth++ > 0) return;
  received.store(0);
  previous_interrupt = std::signal(SIGINT, record_signal);
  previous_terminate = std::signal(SIGTERM, record_signal);
}

InterruptHandler::~InterruptHandler() {
  if (--depth > 0) return;
  std::signal(SIGINT, previous_interrupt);
  std::signal(SIGTERM, previous_terminate);
}

int interrupt_signal() { return received.load(); }

void clear_interrupt() { received.store(0); }

Interrupted::Interrupted(int signal, const std::string& during)
    : std::runtime_error(fmt::format("interrupted by {} during {}",
                                     signal == SIGINT    ? "SIGINT"
                                     : signal == SIGTERM ? "SIGTERM"
                                                         : fmt::format("signal {}", signal),
                                     during)),
      signal_(signal) {}

void stop_if_interrupted(const char* during) {
  if (const int signal = received.load(); signal != 0) throw Interrupted(signal, during);
}

}  // namespace ncflab

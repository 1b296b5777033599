// The process-wide log sink. A sink (not a global logger object) keeps the
// library silent-able in tests and redirectable by the CLI.
#include "ncflab/core/log.h"

#include <cstdio>
#include <mutex>
#include <stdexcept>

namespace ncflab {
namespace {

void write_to_stderr(LogLevel level, std::string_view message) {
  const char* prefix = level == LogLevel::info      ? ""
                       : level == LogLevel::warning ? "ncflab: warning: "
                                                    : "ncflab: error: ";
  std::fprintf(stderr, "%s%.*s\n", prefix, static_cast<int>(message.size()), message.data());
}

std::mutex& sink_mutex() {
  static std::mutex mutex;
  return mutex;
}

LogSink& current_sink() {
  static LogSink sink = write_to_stderr;
  return sink;
}

}  // namespace

LogSink set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  LogSink previous = std::move(current_sink());
  current_sink() = sink ? std::move(sink) : LogSink(write_to_stderr);
  return previous;
}

void log_message(LogLevel level, std::string_view message) {
  LogSink sink;
  {
    std::lock_guard<std::mutex> lock(sink_mutex());
    sink = current_sink();
  }
  sink(level, message);
}

WarningsAsErrors::WarningsAsErrors()
    : previous_(set_log_sink([](LogLevel level, std::string_view message) {
        if (level != LogLevel::info) throw std::runtime_error(std::string(message));
      })) {}

WarningsAsErrors::~WarningsAsErrors() { set_log_sink(std::move(previous_)); }

}  // namespace ncflab

// One logging sink for the whole framework, written through fmt.
// Tests swap the sink to capture messages or to turn warnings into failures.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

namespace ncflab {

enum class LogLevel { info, warning, error };

/// Receives every message; the default one writes "ncflab: warning: ..." to stderr.
using LogSink = std::function<void(LogLevel, std::string_view)>;

/// Installs `sink` and returns the previous one (so a test can restore it).
LogSink set_log_sink(LogSink sink);

/// Sends one message to the sink.
void log_message(LogLevel level, std::string_view message);

template <typename... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) {
  log_message(LogLevel::info, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void log_warning(fmt::format_string<Args...> format, Args&&... args) {
  log_message(LogLevel::warning, fmt::format(format, std::forward<Args>(args)...));
}

/// RAII: while alive, every warning throws std::runtime_error instead of printing.
class WarningsAsErrors {
 public:
  WarningsAsErrors();
  ~WarningsAsErrors();
  WarningsAsErrors(const WarningsAsErrors&) = delete;
  WarningsAsErrors& operator=(const WarningsAsErrors&) = delete;

 private:
  LogSink previous_;
};

}  // namespace ncflab

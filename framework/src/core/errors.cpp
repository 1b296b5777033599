// One-line formatting of user-input errors.
// Kept apart so every component reports bad input the same way.
#include "ncflab/core/errors.h"

#include <fmt/format.h>

namespace ncflab {
namespace {

std::string format_input_error(const SourceLocation& where, const std::string& key,
                               const std::string& expected, const std::string& found) {
  std::string place = where.file.empty() ? std::string("input") : where.file;
  if (where.line > 0) place += fmt::format(":{}", where.line);
  if (key.empty()) return fmt::format("{}: expected {}, found {}", place, expected, found);
  return fmt::format("{}: {}: expected {}, found {}", place, key, expected, found);
}

}  // namespace

InputError::InputError(SourceLocation where, std::string key, std::string expected,
                       std::string found)
    : std::runtime_error(format_input_error(where, key, expected, found)),
      where_(std::move(where)),
      key_(std::move(key)),
      expected_(std::move(expected)),
      found_(std::move(found)) {}

}  // namespace ncflab

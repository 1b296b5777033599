// Errors caused by what the user gave us (config, data, arguments).
// They map to exit code 2 and print as one line: file:line: key: expected X, found Y.
#pragma once

#include <stdexcept>
#include <string>

namespace ncflab {

/// Where a bad value came from: a file (and line, 0 when unknown) or the command line.
struct SourceLocation {
  std::string file;
  int line = 0;
};

/// Bad user input. `what()` is the whole one-line message.
class InputError : public std::runtime_error {
 public:
  /// `key` names the config key, CSV column or argument; `expected` and `found`
  /// complete the sentence "expected <expected>, found <found>".
  InputError(SourceLocation where, std::string key, std::string expected, std::string found);

  const SourceLocation& where() const { return where_; }
  const std::string& key() const { return key_; }
  const std::string& expected() const { return expected_; }
  const std::string& found() const { return found_; }

 private:
  SourceLocation where_;
  std::string key_;
  std::string expected_;
  std::string found_;
};

}  // namespace ncflab

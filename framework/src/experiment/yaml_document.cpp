// Strict YAML for config files (yaml_document.h).
#include "yaml_document.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "ncflab/core/errors.h"

namespace ncflab::config_schema {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// Whether the quote that opens at `column` of `line` closes on that line ('' escapes ' in
// single quotes, \" escapes " in double quotes).
bool closes_on_its_line(const std::string& line, size_t column) {
  if (column >= line.size()) return true;  // not a quote we can see: nothing to say
  const char quote = line[column];
  if (quote != '"' && quote != '\'') return true;
  for (size_t i = column + 1; i < line.size(); ++i) {
    if (quote == '"' && line[i] == '\\') {
      ++i;
    } else if (line[i] == quote) {
      if (quote == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
        ++i;
      } else {
        return true;
      }
    }
  }
  return false;
}

// Counts documents without building them. YAML::LoadAll of yaml-cpp 0.7 (Debian 12) never
// returns on some inputs, e.g. a lone ',' (jbeder/yaml-cpp#1040, found by fuzz_config):
// its loop keeps getting "another document" without one starting. Here each call must start
// a document, and two are enough to know.
class DocumentCounter : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Where a second document starts, if the text holds one.
std::optional<YAML::Mark> second_document_start(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentCounter counter;
  for (size_t calls = 0; calls < 2 && counter.starts.size() < 2; ++calls) {
    const size_t before = counter.starts.size();
    if (!parser.HandleNextDocument(counter) || counter.starts.size() == before) break;
  }
  if (counter.starts.size() < 2) return std::nullopt;
  return counter.starts[1];
}

struct Source {
  std::string name;
  bool with_lines;
  std::vector<std::string> lines;
  SourceLocation at(int line) const { return {name, with_lines ? line : 0}; }
};

void check_node(const YAML::Node& node, const std::string& path, const Source& source) {
  const auto& lines = source.lines;
  if (node.IsScalar() && node.Tag() == "!") {  // a quoted scalar
    const auto mark = node.Mark();
    if (!mark.is_null() && static_cast<size_t>(mark.line) < lines.size() &&
        !closes_on_its_line(lines[static_cast<size_t>(mark.line)],
                            static_cast<size_t>(mark.column))) {
      throw InputError(source.at(mark.line + 1), path, "a quoted value closed on its line",
                       "an unclosed quote");
    }
  }
  if (node.IsSequence()) {
    for (const auto& item : node) check_node(item, path, source);
  }
  if (!node.IsMap()) return;
  std::map<std::string, int> first_line;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    const int line = entry.first.Mark().is_null() ? 0 : entry.first.Mark().line + 1;
    const auto [seen, inserted] = first_line.emplace(key, line);
    if (!inserted) {
      throw InputError(source.at(line), key_path, "each key once",
                       source.with_lines
                           ? fmt::format("'{}' again (first at line {})", key, seen->second)
                           : fmt::format("'{}' again", key));
    }
    check_node(entry.second, key_path, source);
  }
}

}  // namespace

YAML::Node load_strict_yaml(const std::string& text, const std::string& source,
                            const std::string& prefix, bool with_lines) {
  const Source where{source, with_lines, lines_of(text)};
  YAML::Node root;
  try {
    if (const auto second = second_document_start(text)) {
      // A '---' or '...' line after the first starts a second document; without one it is
      // yaml-cpp restarting on text it cannot read (a stray ',').
      const bool marker =
          std::any_of(where.lines.begin() + (where.lines.empty() ? 0 : 1), where.lines.end(),
                      [](const std::string& line) {
                        return line.rfind("---", 0) == 0 || line.rfind("...", 0) == 0;
                      });
      throw InputError(where.at(second->is_null() ? 0 : second->line + 1), prefix,
                       marker ? "one YAML document" : "valid YAML",
                       marker ? "a second document ('---')" : "text YAML cannot read");
    }
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw InputError(where.at(e.mark.is_null() ? 0 : e.mark.line + 1), prefix, "valid YAML", e.msg);
  }
  check_node(root, prefix, where);
  return root;
}

}  // namespace ncflab::config_schema

// Strict YAML for config files (yaml_document.h).
#include "yaml_document.h"

#include <fmt/format.h>

#include <map>
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
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    throw InputError(where.at(e.mark.is_null() ? 0 : e.mark.line + 1), prefix, "valid YAML", e.msg);
  }
  if (documents.size() > 1) {
    const auto mark = documents[1].Mark();
    throw InputError(where.at(mark.is_null() ? 0 : mark.line + 1), prefix, "one YAML document",
                     "a second document ('---')");
  }
  YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  check_node(root, prefix, where);
  return root;
}

}  // namespace ncflab::config_schema

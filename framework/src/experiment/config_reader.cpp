// Helpers of the config reader: key paths, suggestions for unknown keys, how a YAML
// node reads in an error, and overrides merged into the YAML tree.
#include "config_reader.h"

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "yaml_document.h"

namespace ncflab::config_schema {

std::string join_path(const std::vector<std::string>& parts, const std::string& last) {
  std::string path;
  for (const auto& part : parts) path += part + ".";
  return path + last;
}

std::string dotted(const std::vector<std::string>& parts) {
  std::string path;
  for (const auto& part : parts) path += (path.empty() ? "" : ".") + part;
  return path;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
    case YAML::NodeType::Map: {
      // On one line, nested collections too, and short: it goes into a one-line message.
      YAML::Emitter flow;
      flow.SetSeqFormat(YAML::Flow);
      flow.SetMapFormat(YAML::Flow);
      flow << node;
      std::string text = flow.c_str();
      for (char& c : text) {
        if (c == '\n') c = ' ';
      }
      return text.size() > 80 ? text.substr(0, 77) + "..." : text;
    }
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "?";
}

namespace {

// Put into the overrides' tree: `parent[key] = value`, marking a mapping that replaces a value
// that was not one, so that the file's section below does not show through (Hydra: a
// mapping merges into a section, and replaces anything else).
void set_override(YAML::Node parent, const std::string& key, const YAML::Node& value) {
  const bool replaces = [&] {
    const YAML::Node previous = std::as_const(parent)[key];
    return previous.IsDefined() && !previous.IsMap();
  }();
  parent[key] = value;
  if (replaces && value.IsMap()) parent[key].SetTag(kReplacesSection);
}

// Every key of `value` into the section `target`, sections into sections.
void merge_into(YAML::Node target, const YAML::Node& value) {
  for (const auto& entry : value) {
    const std::string key = entry.first.Scalar();
    YAML::Node child = target[key];
    if (entry.second.IsMap() && child.IsDefined() && child.IsMap()) {
      merge_into(child, entry.second);
    } else {
      set_override(target, key, entry.second);
    }
  }
}

// The YAML value of an override, parsed once per text: the points of a sweep repeat the same
// few assignments thousands of times. A fresh copy each time, since the caller's tree takes
// ownership (yaml-cpp merges the memory of nodes assigned into a tree).
YAML::Node override_value(const std::string& assignment, const std::string& path,
                          const std::string& text) {
  thread_local std::unordered_map<std::string, YAML::Node> parsed;
  auto it = parsed.find(assignment);
  if (it == parsed.end()) {
    YAML::Node value;
    try {
      value = load_strict_yaml(text, fmt::format("override '{}'", assignment), path, false);
    } catch (const YAML::Exception& e) {
      throw InputError({fmt::format("override '{}'", assignment), 0}, path, "a YAML value", e.msg);
    }
    if (parsed.size() >= 4096) parsed.clear();
    it = parsed.emplace(assignment, value).first;
  }
  return YAML::Clone(it->second);
}

}  // namespace

/// "a.b=value" → (path "a.b", YAML value), inserted into `override_root`.
std::string apply_override(YAML::Node& override_root, const YAML::Node& file_root,
                           const std::string& assignment) {
  const SourceLocation where{"command line", 0};
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw InputError(where, "", "an override key.path=value", fmt::format("'{}'", assignment));
  }
  const std::string path = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  std::vector<std::string> parts;
  std::stringstream stream(path);
  for (std::string part; std::getline(stream, part, '.');) {
    if (part.empty()) {
      throw InputError(where, path, "a dotted key path like train.step",
                       fmt::format("'{}'", assignment));
    }
    parts.push_back(part);
  }
  if (path.back() == '.') {
    throw InputError(where, path, "a dotted key path like train.step",
                     fmt::format("'{}'", assignment));
  }
  const YAML::Node value = override_value(assignment, path, text);
  if (value.IsNull()) {
    throw InputError({fmt::format("override '{}'", assignment), 0}, path, "a value after '='",
                     "nothing");
  }
  // Walk both trees: the overrides' own (sections created as needed) and the file's, which is
  // only read. Fresh handles throughout: assigning to a yaml-cpp Node rebinds shared data.
  std::vector<YAML::Node> chain{override_root};
  std::vector<YAML::Node> file_chain{file_root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const YAML::Node overridden = std::as_const(chain.back())[parts[i]];
    const YAML::Node in_file = std::as_const(file_chain.back())[parts[i]];
    const YAML::Node& current = overridden.IsDefined() ? overridden : in_file;
    if (current.IsDefined() && !current.IsNull() && !current.IsMap()) {
      throw InputError({fmt::format("override '{}'", assignment), 0}, path,
                       fmt::format("'{}' to be a section", parts[i]), describe_node(current));
    }
    if (!overridden.IsDefined()) chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
    chain.push_back(chain.back()[parts[i]]);
    file_chain.push_back(in_file.IsDefined() && in_file.IsMap() &&
                                 std::as_const(chain.back()).Tag() != kReplacesSection
                             ? in_file
                             : YAML::Node(YAML::NodeType::Map));
  }
  // A mapping merges into the section it names (Hydra): train={step: 0.5} changes the step and
  // keeps the file's other train keys.
  YAML::Node target = chain.back()[parts.back()];
  if (value.IsMap() && target.IsDefined() && target.IsMap()) {
    merge_into(target, value);
  } else {
    set_override(chain.back(), parts.back(), value);
  }
  return path;
}

}  // namespace ncflab::config_schema

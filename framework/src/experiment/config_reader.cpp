// Helpers of the config reader: key paths, suggestions for unknown keys, how a YAML
// node reads in an error, and overrides merged into the YAML tree.
#include "config_reader.h"

#include <algorithm>
#include <sstream>

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

// Every key of `value` into the section `target`, sections into sections.
void merge_into(YAML::Node target, const YAML::Node& value) {
  for (const auto& entry : value) {
    const std::string key = entry.first.Scalar();
    YAML::Node child = target[key];
    if (entry.second.IsMap() && child.IsDefined() && child.IsMap()) {
      merge_into(child, entry.second);
    } else {
      target[key] = entry.second;
    }
  }
}

}  // namespace

/// "a.b=value" → (path "a.b", YAML value), inserted into `root`.
std::string apply_override(YAML::Node& root, const std::string& assignment) {
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
  YAML::Node value;
  try {
    value = load_strict_yaml(text, fmt::format("override '{}'", assignment), path, false);
  } catch (const YAML::Exception& e) {
    throw InputError({fmt::format("override '{}'", assignment), 0}, path, "a YAML value", e.msg);
  }
  if (value.IsNull()) {
    throw InputError({fmt::format("override '{}'", assignment), 0}, path, "a value after '='",
                     "nothing");
  }
  // Walk with fresh handles: assigning to a yaml-cpp Node handle rebinds shared data.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = chain.back()[parts[i]];
    if (!child.IsDefined() || child.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      child = chain.back()[parts[i]];
    } else if (!child.IsMap()) {
      throw InputError({fmt::format("override '{}'", assignment), 0}, path,
                       fmt::format("'{}' to be a section", parts[i]), describe_node(child));
    }
    chain.push_back(child);
  }
  // A mapping merges into the section it names (Hydra): train={step: 0.5} changes the step and
  // keeps the file's other train keys.
  YAML::Node target = chain.back()[parts.back()];
  if (value.IsMap() && target.IsDefined() && target.IsMap()) {
    merge_into(target, value);
  } else {
    chain.back()[parts.back()] = value;
  }
  return path;
}

}  // namespace ncflab::config_schema

// Reading a config's YAML tree (internal): the visitor that fills a Config from it,
// remembering where each key was set, and Hydra-style overrides merged into the tree.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config_schema.h"
#include "ncflab/experiment/config.h"

namespace ncflab::config_schema {

/// "train" + "step" → "train.step".
std::string join_path(const std::vector<std::string>& parts, const std::string& last);
/// {"model", "activation"} → "model.activation".
std::string dotted(const std::vector<std::string>& parts);
/// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);
/// A node as an error message shows it: 'scalar', [flow, sequence], nothing.
std::string describe_node(const YAML::Node& node);

/// "a.b=value" → inserts the YAML value at a.b of `root`; returns the path "a.b".
std::string apply_override(YAML::Node& root, const std::string& assignment);

/// Reads a YAML tree into a Config, remembering where each key was set.
class YamlReader {
 public:
  YamlReader(Config& config, const YAML::Node& root, std::map<std::string, std::string> overrides)
      : config_(config), overrides_(std::move(overrides)) {
    nodes_.push_back(root);
    seen_.emplace_back();
  }

  template <typename T>
  void field(const char* key, T& value, Check<T> check = {}) {
    const YAML::Node node = lookup(key);
    if (!node.IsDefined()) return;
    const SourceLocation where = locate(key, node);
    const std::string path = join_path(path_, key);
    config_.key_locations[path] = where;
    if (!decode(node, value))
      throw InputError(where, path, expectation(value), describe_node(node));
    if (check) {
      const std::string expected = check(value);
      if (!expected.empty()) throw InputError(where, path, expected, describe_node(node));
    }
  }

  template <typename E>
  void choice(const char* key, E& value, const Choices<E>& choices) {
    const YAML::Node node = lookup(key);
    if (!node.IsDefined()) return;
    const SourceLocation where = locate(key, node);
    const std::string path = join_path(path_, key);
    config_.key_locations[path] = where;
    std::string names;
    for (const auto& [name, option] : choices) {
      if (node.IsScalar() && node.Scalar() == name) {
        value = option;
        return;
      }
      names += (names.empty() ? "" : " | ") + std::string(name);
    }
    throw InputError(where, path, fmt::format("one of {}", names), describe_node(node));
  }

  template <typename Body>
  void section(const char* key, Body&& body) {
    const YAML::Node node = lookup(key);
    if (!node.IsDefined()) return;
    const std::string path = join_path(path_, key);
    if (!node.IsMap()) {
      throw InputError(locate(key, node), path, fmt::format("a mapping of {} keys", path),
                       describe_node(node));
    }
    config_.key_locations[path] = locate(key, node);
    nodes_.push_back(node);
    path_.push_back(key);
    seen_.emplace_back();
    body();
    reject_unknown_keys();
    seen_.pop_back();
    path_.pop_back();
    nodes_.pop_back();
  }

  /// Keys earlier versions read, with what replaced them; nullptr for any other key.
  static const char* removed_key_hint(const std::string& path) {
    if (path == "flow.kink_step") {
      return "no flow.kink_step: p = 1 flows now locate every kink crossing with error control "
             "(README \"The NCF flow\"); delete the key";
    }
    if (path == "flow.atol") return "no flow.atol: the flow's tolerance is flow.rtol alone";
    return nullptr;
  }

  /// After the walk: every key of the current mapping must have been visited.
  void reject_unknown_keys() {
    const YAML::Node& map = nodes_.back();
    for (const auto& entry : map) {
      const std::string key = entry.first.Scalar();
      if (seen_.back().count(key)) continue;
      if (const char* hint = removed_key_hint(join_path(path_, key))) {
        throw InputError(locate(key, entry.first), join_path(path_, key), hint, "a removed key");
      }
      std::string known;
      std::string suggestion;
      size_t best = 3;  // suggest only close matches (≤ 2 edits)
      for (const auto& name : seen_.back()) {
        known += (known.empty() ? "" : ", ") + name;
        const size_t distance = edit_distance(key, name);
        if (distance < best) {
          best = distance;
          suggestion = name;
        }
      }
      const std::string where_text = path_.empty() ? "at the top level" : "under " + dotted(path_);
      std::string expected = fmt::format("a known key {} ({})", where_text, known);
      if (!suggestion.empty())
        expected = fmt::format("{} – did you mean '{}'?", expected, suggestion);
      throw InputError(locate(key, entry.first), join_path(path_, key), expected, "an unknown key");
    }
  }

 private:
  YAML::Node lookup(const char* key) {
    seen_.back().insert(key);
    const YAML::Node& map = nodes_.back();
    return map[key];
  }

  SourceLocation locate(const std::string& key, const YAML::Node& node) const {
    const std::string path = join_path(path_, key);
    // An override below this key (it created the section).
    const auto below = overrides_.lower_bound(path + ".");
    if (below != overrides_.end() && below->first.rfind(path + ".", 0) == 0) {
      return {fmt::format("override '{}'", below->second), 0};
    }
    // The longest override that is this key or one of its sections wins.
    for (std::string prefix = path;;) {
      const auto it = overrides_.find(prefix);
      if (it != overrides_.end()) return {fmt::format("override '{}'", it->second), 0};
      const auto dot = prefix.rfind('.');
      if (dot == std::string::npos) break;
      prefix.resize(dot);
    }
    const YAML::Mark mark = node.Mark();
    return {config_.file, mark.is_null() ? 0 : mark.line + 1};
  }

  static bool decode(const YAML::Node& node, std::string& value) {
    if (!node.IsScalar()) return false;
    value = node.Scalar();
    return true;
  }
  static bool decode(const YAML::Node& node, bool& value) {
    return node.IsScalar() && YAML::convert<bool>::decode(node, value);
  }
  static bool decode(const YAML::Node& node, double& value) {
    return node.IsScalar() && YAML::convert<double>::decode(node, value) && std::isfinite(value);
  }
  static bool decode(const YAML::Node& node, int64_t& value) {
    if (!node.IsScalar()) return false;
    if (YAML::convert<int64_t>::decode(node, value)) return true;
    // Accept integral floating forms such as 1e5, which researchers write for step counts.
    double number = 0;
    if (!YAML::convert<double>::decode(node, number) || !std::isfinite(number) ||
        number != std::floor(number) || std::fabs(number) > 9.0e15) {
      return false;
    }
    value = static_cast<int64_t>(number);
    return true;
  }
  static bool decode(const YAML::Node& node, std::vector<int64_t>& value) {
    std::vector<int64_t> items;
    if (node.IsScalar()) {  // `widths: 20` means [20]
      int64_t item = 0;
      if (!decode(node, item)) return false;
      items.push_back(item);
    } else if (node.IsSequence()) {
      for (const auto& element : node) {
        int64_t item = 0;
        if (!decode(element, item)) return false;
        items.push_back(item);
      }
    } else {
      return false;
    }
    value = std::move(items);
    return true;
  }

  static std::string expectation(const std::string&) { return "a string"; }
  static std::string expectation(bool) { return "true or false"; }
  static std::string expectation(double) { return "a finite number"; }
  static std::string expectation(int64_t) { return "an integer"; }
  static std::string expectation(const std::vector<int64_t>&) { return "a list of integers"; }

  Config& config_;
  std::map<std::string, std::string> overrides_;  // key path → "key=value" as typed
  std::vector<YAML::Node> nodes_;
  std::vector<std::string> path_;
  std::vector<std::set<std::string>> seen_;
};

}  // namespace ncflab::config_schema

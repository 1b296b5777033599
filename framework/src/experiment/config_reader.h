// Reading a config's YAML tree (internal): the visitor that fills a Config from it,
// remembering where each key was set, and Hydra-style overrides merged into the tree.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
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

/// The tag of an override's mapping that replaced a value that was not a mapping: the file's
/// section of that name no longer shows through.
inline constexpr const char* kReplacesSection = "!ncflab/replaces-section";

/// "a.b=value" → inserts the YAML value at a.b of `override_root`, the tree of overrides read
/// over `file_root` (which it checks against: a key below a value that is not a section is an
/// error); returns the path "a.b".
std::string apply_override(YAML::Node& override_root, const YAML::Node& file_root,
                           const std::string& assignment);

/// A mapping's entries, indexed by key, and its nested mappings, indexed when first asked
/// for. yaml-cpp finds a key by comparing it with each key of the mapping in turn, building a
/// Node for every comparison; reading a config key by key paid that for each of its ~80 keys,
/// the bulk of resolving one point of a sweep. The file's index is kept for all points.
class IndexedMapping {
 public:
  explicit IndexedMapping(const YAML::Node& map) : tag_(map.Tag()) {
    for (const auto& entry : map) {
      entries_.emplace_back(entry.first, entry.second);
      if (entry.first.IsScalar()) index_.emplace(entry.first.Scalar(), entries_.size() - 1);
    }
    sections_.resize(entries_.size());
  }

  /// The value of `key`; an undefined node when the mapping has none.
  YAML::Node operator[](const std::string& key) const {
    const auto it = index_.find(key);
    if (it != index_.end()) return entries_[it->second].second;
    // Made once: a missing key's node names the key, streamed through a std::stringstream.
    static const YAML::Node none = [] {
      const YAML::Node empty(YAML::NodeType::Map);
      return empty["none"];  // const: finds nothing and inserts nothing
    }();
    return none;
  }

  /// The mapping at `key` indexed, or nullptr when the value there is absent or not a mapping.
  /// Indexed on demand, never eagerly: YAML anchors can make a mapping contain itself.
  const IndexedMapping* section(const std::string& key) const {
    const auto it = index_.find(key);
    if (it == index_.end() || !entries_[it->second].second.IsMap()) return nullptr;
    const std::lock_guard<std::mutex> lock(mutex_);
    auto& section = sections_[it->second];
    if (!section) section = std::make_unique<IndexedMapping>(entries_[it->second].second);
    return section.get();
  }

  /// (key, value) in the mapping's order.
  const std::vector<std::pair<YAML::Node, YAML::Node>>& entries() const { return entries_; }
  const std::string& tag() const { return tag_; }

 private:
  std::string tag_;
  std::vector<std::pair<YAML::Node, YAML::Node>> entries_;
  std::unordered_map<std::string, size_t> index_;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<IndexedMapping>> sections_;  // per entry
};

/// Reads a YAML tree into a Config, remembering where each key was set.
class YamlReader {
 public:
  /// `file_root` is the config file's tree, `override_root` the overrides' own (see
  /// apply_override): a key is read from the overrides where they set it, a section is the
  /// overrides' mapping merged over the file's.
  YamlReader(Config& config, const IndexedMapping& file_root, const IndexedMapping& override_root,
             std::map<std::string, std::string> overrides)
      : config_(config), overrides_(std::move(overrides)) {
    nodes_.push_back({&override_root, &file_root});
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
    nodes_.push_back(layers_below(key));
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
    for (const IndexedMapping* map : nodes_.back()) {
      reject_unknown_keys_of(*map);
    }
  }

 private:
  void reject_unknown_keys_of(const IndexedMapping& map) {
    for (const auto& entry : map.entries()) {
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

  // The value of `key` in the first layer that has it (undefined when none does). Handles are
  // copied, never assigned: assigning a yaml-cpp Node rebinds the data it shares.
  YAML::Node lookup(const char* key) {
    seen_.back().insert(key);
    const std::vector<const IndexedMapping*>& layers = nodes_.back();
    for (size_t i = 0; i + 1 < layers.size(); ++i) {
      const YAML::Node node = (*layers[i])[key];
      if (node.IsDefined()) return node;
    }
    return (*layers.back())[key];
  }

  // The mappings that make up section `key`: each layer's, from the first, as long as they
  // are mappings; a value that is not a mapping replaces what the layers below hold.
  std::vector<const IndexedMapping*> layers_below(const char* key) const {
    std::vector<const IndexedMapping*> layers;
    for (const IndexedMapping* layer : nodes_.back()) {
      const IndexedMapping* section = layer->section(key);
      if (section == nullptr) {
        if ((*layer)[key].IsDefined()) break;  // a value that is not a mapping
        continue;
      }
      layers.push_back(section);
      if (section->tag() == kReplacesSection) break;
    }
    return layers;
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
    return node.IsScalar() && convert_scalar(node, value) && std::isfinite(value);
  }
  static bool decode(const YAML::Node& node, int64_t& value) {
    if (!node.IsScalar()) return false;
    if (convert_scalar(node, value)) return true;
    // Accept integral floating forms such as 1e5, which researchers write for step counts.
    double number = 0;
    if (!convert_scalar(node, number) || !std::isfinite(number) || number != std::floor(number) ||
        std::fabs(number) > 9.0e15) {
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

  // YAML::convert<T>::decode, remembered per text: it parses through a std::stringstream
  // (a locale built per call), and a sweep's points read the same few scalars thousands of
  // times. Bounded, so a long-lived process does not grow it without end.
  template <typename T>
  static bool convert_scalar(const YAML::Node& node, T& value) {
    thread_local std::unordered_map<std::string, std::optional<T>> known;
    const std::string& text = node.Scalar();
    auto it = known.find(text);
    if (it == known.end()) {
      if (known.size() >= 4096) known.clear();
      T decoded{};
      it = known
               .emplace(text, YAML::convert<T>::decode(node, decoded) ? std::optional<T>(decoded)
                                                                      : std::nullopt)
               .first;
    }
    if (!it->second) return false;
    value = *it->second;
    return true;
  }

  static std::string expectation(const std::string&) { return "a string"; }
  static std::string expectation(bool) { return "true or false"; }
  static std::string expectation(double) { return "a finite number"; }
  static std::string expectation(int64_t) { return "an integer"; }
  static std::string expectation(const std::vector<int64_t>&) { return "a list of integers"; }

  Config& config_;
  std::map<std::string, std::string> overrides_;           // key path → "key=value" as typed
  std::vector<std::vector<const IndexedMapping*>> nodes_;  // per open section: overrides', file's
  std::vector<std::string> path_;
  std::vector<std::set<std::string>> seen_;
};

}  // namespace ncflab::config_schema

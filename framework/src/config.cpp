// Config loading: one visitor walks every key once (visit_config), and the
// reader, the writer and the key list all reuse that walk, so a key added there
// is parsed, range-checked, echoed into config.yaml and listed, all at once.
#include "ncflab/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "ncflab/feedforward.h"
#include "ncflab/log.h"

namespace ncflab {
namespace {

/// Returns "" when the value is acceptable, else what was expected ("a number > 0").
template <typename T>
using Check = std::function<std::string(const T&)>;

template <typename E>
using Choices = std::vector<std::pair<const char*, E>>;

Check<double> greater_than(double bound) {
  return [bound](const double& v) { return v > bound ? "" : fmt::format("a number > {:g}", bound); };
}
Check<double> at_least(double bound) {
  return [bound](const double& v) { return v >= bound ? "" : fmt::format("a number >= {:g}", bound); };
}
Check<double> within(double low, double high) {
  return [=](const double& v) {
    return v >= low && v <= high ? "" : fmt::format("a number in [{:g}, {:g}]", low, high);
  };
}
Check<int64_t> at_least_int(int64_t bound) {
  return [bound](const int64_t& v) { return v >= bound ? "" : fmt::format("an integer >= {}", bound); };
}
Check<std::vector<int64_t>> positive_widths() {
  return [](const std::vector<int64_t>& widths) -> std::string {
    if (widths.empty()) return "a non-empty list of hidden widths (depth K = len + 1 >= 2)";
    for (int64_t w : widths) {
      if (w < 1) return "hidden widths >= 1";
    }
    return "";
  };
}
Check<std::string> anything() {
  return [](const std::string&) { return std::string(); };
}

/// The one list of config keys, in the order config.yaml shows them.
template <typename Visitor>
void visit_config(Config& c, Visitor& v) {
  v.field("name", c.name, Check<std::string>([](const std::string& s) {
            return s.empty() || s.find('/') != std::string::npos ? "a non-empty name without '/'"
                                                                 : "";
          }));
  v.field("seed", c.seed, at_least_int(0));
  v.choice("device", c.device,
           Choices<DeviceChoice>{{"auto", DeviceChoice::automatic},
                                 {"cpu", DeviceChoice::cpu},
                                 {"cuda", DeviceChoice::cuda}});
  v.choice("dtype", c.dtype,
           Choices<torch::Dtype>{{"float64", torch::kFloat64}, {"float32", torch::kFloat32}});
  v.field("threads", c.threads, at_least_int(0));
  v.section("data", [&] {
    auto& d = c.data;
    v.choice("source", d.source,
             Choices<DataSource>{{"synthetic", DataSource::synthetic}, {"csv", DataSource::csv}});
    v.field("n", d.n, at_least_int(1));
    v.field("d", d.d, at_least_int(1));
    v.choice("inputs", d.inputs,
             Choices<InputDistribution>{{"gaussian", InputDistribution::gaussian},
                                        {"sphere", InputDistribution::sphere}});
    v.choice("teacher", d.teacher,
             Choices<TeacherKind>{{"neuron", TeacherKind::neuron},
                                  {"two_layer", TeacherKind::two_layer},
                                  {"random_signs", TeacherKind::random_signs}});
    v.field("teacher_width", d.teacher_width, at_least_int(1));
    v.field("label_noise", d.label_noise, at_least(0.0));
    v.field("sign_labels", d.sign_labels);
    v.field("path", d.path, anything());
    v.field("label", d.label, anything());
    v.choice("normalize", d.normalize,
             Choices<InputNormalization>{{"none", InputNormalization::none},
                                         {"standardize", InputNormalization::standardize},
                                         {"sphere", InputNormalization::sphere}});
  });
  v.section("model", [&] {
    v.choice("kind", c.model.kind,
             Choices<ModelKind>{{"feedforward", ModelKind::feedforward},
                                {"single_layer", ModelKind::single_layer}});
    v.field("widths", c.model.widths, positive_widths());
    v.section("activation", [&] {
      v.field("alpha", c.model.activation.alpha, within(-1.0, 1.0));
      v.field("p", c.model.activation.p, at_least_int(1));
    });
  });
  v.choice("loss", c.loss,
           Choices<LossKind>{{"square", LossKind::square}, {"logistic", LossKind::logistic}});
  v.section("init", [&] { v.field("scale", c.init.scale, greater_than(0.0)); });
  v.section("train", [&] {
    v.field("step", c.train.step, greater_than(0.0));
    v.field("max_steps", c.train.max_steps, at_least_int(1));
    v.field("escape_radius", c.train.escape_radius, greater_than(0.0));
    v.field("stop_at_escape", c.train.stop_at_escape);
    v.field("log_every", c.train.log_every, at_least_int(1));
    v.choice("engine", c.train.engine,
             Choices<EngineKind>{{"auto", EngineKind::automatic},
                                 {"fused", EngineKind::fused},
                                 {"batched", EngineKind::batched},
                                 {"autograd", EngineKind::autograd}});
    v.field("checkpoint_every", c.train.checkpoint_every, at_least_int(0));
    v.field("snapshot_every", c.train.snapshot_every, at_least_int(0));
  });
  v.section("ensemble", [&] { v.field("seeds", c.ensemble.seeds, at_least_int(1)); });
  v.section("hooks", [&] {
    const Choices<Switch> switches{{"auto", Switch::automatic}, {"true", Switch::on}, {"false", Switch::off}};
    v.field("kkt", c.hooks.kkt);
    v.field("kkt_search", c.hooks.kkt_search);
    v.choice("kink_residual", c.hooks.kink_residual, switches);
    v.field("layers", c.hooks.layers);
    v.choice("progress", c.hooks.progress, switches);
    v.field("progress_seconds", c.hooks.progress_seconds, greater_than(0.0));
  });
  v.section("kkt", [&] {
    v.field("restarts", c.kkt.restarts, at_least_int(1));
    v.field("tol", c.kkt.tol, greater_than(0.0));
    v.field("max_iterations", c.kkt.max_iterations, at_least_int(1));
    v.field("kink_tol", c.kkt.kink_tol, greater_than(0.0));
    v.field("rank_one_tol", c.kkt.rank_one_tol, greater_than(0.0));
  });
  v.section("flow", [&] {
    v.field("max_norm", c.flow.max_norm, greater_than(1.0));
    v.field("rtol", c.flow.rtol, greater_than(0.0));
    v.field("atol", c.flow.atol, greater_than(0.0));
    v.field("max_steps", c.flow.max_steps, at_least_int(1));
    v.field("max_time", c.flow.max_time, greater_than(0.0));
    v.field("record_every", c.flow.record_every, at_least_int(1));
    v.field("enabled", c.flow.enabled);
    v.field("kink_step", c.flow.kink_step, within(0.0, 0.1));
  });
}

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
    case YAML::NodeType::Scalar: return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
    case YAML::NodeType::Map: {
      YAML::Emitter flow;
      flow << YAML::Flow << node;
      return flow.c_str();
    }
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Undefined: return "nothing";
  }
  return "?";
}

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
    if (!decode(node, value)) throw InputError(where, path, expectation(value), describe_node(node));
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

  /// After the walk: every key of the current mapping must have been visited.
  void reject_unknown_keys() {
    const YAML::Node& map = nodes_.back();
    for (const auto& entry : map) {
      const std::string key = entry.first.Scalar();
      if (seen_.back().count(key)) continue;
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
      if (!suggestion.empty()) expected = fmt::format("{} – did you mean '{}'?", expected, suggestion);
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

/// Writes a Config as YAML, every key with its value.
class YamlWriter {
 public:
  explicit YamlWriter(YAML::Emitter& out) : out_(out) {}

  template <typename T, typename... Checks>
  void field(const char* key, const T& value, const Checks&...) {
    out_ << YAML::Key << key << YAML::Value;
    emit(value);
  }

  template <typename E>
  void choice(const char* key, const E& value, const Choices<E>& choices) {
    for (const auto& [name, option] : choices) {
      if (option == value) out_ << YAML::Key << key << YAML::Value << name;
    }
  }

  template <typename Body>
  void section(const char* key, Body&& body) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    body();
    out_ << YAML::EndMap;
  }

 private:
  void emit(const std::string& value) { out_ << value; }
  void emit(bool value) { out_ << (value ? "true" : "false"); }
  void emit(int64_t value) { out_ << value; }
  // Shortest text that reads back to the same double.
  void emit(double value) { out_ << fmt::format("{}", value); }
  void emit(const std::vector<int64_t>& value) {
    out_ << YAML::Flow << YAML::BeginSeq;
    for (int64_t item : value) out_ << item;
    out_ << YAML::EndSeq;
  }

  YAML::Emitter& out_;
};

/// Collects the key paths of the walk.
class KeyLister {
 public:
  template <typename T, typename... Rest>
  void field(const char* key, T&, Rest&&...) { keys.push_back(join_path(path_, key)); }
  template <typename E>
  void choice(const char* key, E&, const Choices<E>&) { keys.push_back(join_path(path_, key)); }
  template <typename Body>
  void section(const char* key, Body&& body) {
    path_.push_back(key);
    body();
    path_.pop_back();
  }
  std::vector<std::string> keys;

 private:
  std::vector<std::string> path_;
};

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
      throw InputError(where, path, "a dotted key path like train.step", fmt::format("'{}'", assignment));
    }
    parts.push_back(part);
  }
  if (path.back() == '.') {
    throw InputError(where, path, "a dotted key path like train.step", fmt::format("'{}'", assignment));
  }
  YAML::Node value;
  try {
    value = YAML::Load(text);
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
  chain.back()[parts.back()] = value;
  return path;
}

/// Rules that involve several keys, and warnings about settings that will surprise.
void check_config(Config& config) {
  const auto& data = config.data;
  if (data.source == DataSource::csv && data.path.empty()) {
    throw InputError(config.location_of("data.source"), "data.path",
                     "a CSV file path for data.source: csv", "none");
  }
  if (config.loss == LossKind::logistic && data.source == DataSource::synthetic &&
      data.teacher != TeacherKind::random_signs && !data.sign_labels) {
    throw InputError(config.location_of("loss"), "data.sign_labels",
                     "true for loss: logistic (labels must be +1 or -1)", "false");
  }
  const auto& model = config.model;
  if (model.kind == ModelKind::single_layer && model.widths.size() != 1) {
    throw InputError(config.location_of("model.widths"), "model.widths",
                     "exactly one hidden width [k] for model.kind: single_layer",
                     fmt::format("[{}] ({} widths)", fmt::join(model.widths, ", "),
                                 model.widths.size()));
  }
  const int64_t depth = static_cast<int64_t>(model.widths.size()) + 1;
  long double total = model.activation.p;  // single_layer: L = q_1 = p (no output row)
  if (model.kind == ModelKind::feedforward) {
    total = 0;  // Σ p^(K−l)
    for (long double q = 1, l = 0; l < depth; ++l, q *= model.activation.p) total += q;
  }
  if (total > 1.0e15L) {
    throw InputError(config.location_of("model.activation.p"), "model",
                     "a total degree L = sum p^(K-l) below 1e15",
                     fmt::format("p = {} with depth {}", model.activation.p, depth));
  }
  const double degree = static_cast<double>(total);
  const double output_scale = std::pow(config.init.scale, degree);
  if (config.dtype == torch::kFloat32 && output_scale < 1.0e-30) {
    log_warning(
        "{}: dtype float32 with init.scale {:g} and total degree L = {:g}: outputs start near "
        "delta^L = {:.3g}, at or below float32's underflow (~1e-38); use dtype: float64",
        config.file, config.init.scale, degree, output_scale);
  }
  if (config.init.scale >= config.train.escape_radius) {
    log_warning("{}: init.scale {:g} >= train.escape_radius {:g}: the run counts as escaped at step 0",
                config.file, config.init.scale, config.train.escape_radius);
  }
}

std::map<std::string, std::string> override_table(const std::vector<std::string>& overrides,
                                                  YAML::Node& root) {
  std::map<std::string, std::string> table;
  for (const auto& assignment : overrides) table[apply_override(root, assignment)] = assignment;
  return table;
}

}  // namespace

SourceLocation Config::location_of(const std::string& key) const {
  const auto it = key_locations.find(key);
  return it != key_locations.end() ? it->second : SourceLocation{file, 0};
}

Config parse_config(const std::string& yaml_text, const std::string& file,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw InputError({file, e.mark.is_null() ? 0 : e.mark.line + 1}, "", "valid YAML", e.msg);
  }
  if (root.IsNull() || !root.IsDefined()) {
    throw InputError({file, 0}, "", "a mapping of config keys", "an empty document");
  }
  if (!root.IsMap()) throw InputError({file, 1}, "", "a mapping of config keys", describe_node(root));

  Config config;
  config.file = file;
  const auto overridden = override_table(overrides, root);
  YamlReader reader(config, root, overridden);
  visit_config(config, reader);
  reader.reject_unknown_keys();

  // A relative data path written in the file is relative to the file, so a config
  // works from any working directory; one given on the command line is relative to
  // that directory. Stored absolute, so the run's own config.yaml reads back the same.
  const std::filesystem::path data_path(config.data.path);
  if (!data_path.empty() && data_path.is_relative()) {
    const bool from_command_line = overridden.count("data.path") || overridden.count("data");
    const std::filesystem::path base = from_command_line
                                           ? std::filesystem::current_path()
                                           : std::filesystem::path(file).parent_path();
    config.data.path = std::filesystem::absolute(base / data_path).lexically_normal().string();
  }
  check_config(config);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream stream(path);
  if (!stream || std::filesystem::is_directory(path)) {
    throw InputError({path, 0}, "", "a readable YAML config file", "no such file");
  }
  std::stringstream text;
  text << stream.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::string config_to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(out);
  visit_config(const_cast<Config&>(config), writer);  // the writer only reads
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> config_key_paths() {
  Config config;
  KeyLister lister;
  visit_config(config, lister);
  return lister.keys;
}

}  // namespace ncflab

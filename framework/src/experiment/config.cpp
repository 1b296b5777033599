// Config loading: parse the YAML, merge the overrides, let the schema's visitor read
// every key, check the rules that span keys; and write a Config back as YAML.
#include "ncflab/experiment/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "config_reader.h"
#include "config_schema.h"
#include "ncflab/core/files.h"
#include "ncflab/core/log.h"
#include "ncflab/core/text.h"
#include "ncflab/train/gradient_flow.h"
#include "yaml_document.h"

namespace ncflab {

using namespace config_schema;  // the schema and reader are this file's own internals

namespace {

/// A string as a YAML scalar: plain where that cannot be read as anything else, otherwise
/// double-quoted with escapes. Written by hand rather than with YAML::Emitter, whose
/// per-string checks made writing a 10 000-point sweep's configs take seconds.
std::string yaml_string(const std::string& value) {
  static const char* const kReserved[] = {"null", "true", "false", "yes", "no",
                                          "on",   "off",  "y",     "n"};
  bool plain = !value.empty() && (std::isalpha(static_cast<unsigned char>(value[0])) ||
                                  value[0] == '/' || value[0] == '_');
  for (char c : value) {
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                      c == '/' || c == '-' || c == '+');
  }
  std::string lower;
  for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* reserved : kReserved) plain = plain && lower != reserved;
  if (plain) return value;
  std::string quoted = "\"";
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (c == '\n') {
      quoted += "\\n";
    } else if (c == '\t') {
      quoted += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      quoted += fmt::format("\\x{:02x}", byte);
    } else {
      quoted += c;  // UTF-8 is valid inside a double-quoted scalar
    }
  }
  return quoted + "\"";
}

/// Writes a Config as block YAML, every key with its value, two spaces per level.
class YamlWriter {
 public:
  template <typename T, typename... Checks>
  void field(const char* key, const T& value, const Checks&...) {
    line(key, scalar(value));
  }

  template <typename E>
  void choice(const char* key, const E& value, const Choices<E>& choices) {
    for (const auto& [name, option] : choices) {
      if (option == value) line(key, name);
    }
  }

  template <typename Body>
  void section(const char* key, Body&& body) {
    text.append(indent_, ' ').append(key).append(":\n");
    indent_ += 2;
    body();
    indent_ -= 2;
  }

  std::string text;

 private:
  void line(const char* key, const std::string& value) {
    text.append(indent_, ' ').append(key).append(": ").append(value).append("\n");
  }
  static std::string scalar(const std::string& value) { return yaml_string(value); }
  static std::string scalar(bool value) { return value ? "true" : "false"; }
  static std::string scalar(int64_t value) { return fmt::format("{}", value); }
  // Shortest text that reads back to the same double.
  static std::string scalar(double value) { return fmt::format("{}", value); }
  static std::string scalar(const std::vector<int64_t>& value) {
    return fmt::format("[{}]", fmt::join(value, ", "));
  }

  size_t indent_ = 0;
};

/// Collects the key paths of the walk and the kind of value each takes.
class KeyLister {
 public:
  template <typename T, typename... Rest>
  void field(const char* key, T& value, Rest&&...) {
    keys.emplace_back(join_path(path_, key), type_name(value));
  }
  template <typename E>
  void choice(const char* key, E&, const Choices<E>& choices) {
    std::string names;
    for (const auto& choice : choices)
      names += (names.empty() ? "" : " | ") + std::string(choice.first);
    keys.emplace_back(join_path(path_, key), "one of " + names);
  }
  template <typename Body>
  void section(const char* key, Body&& body) {
    path_.push_back(key);
    body();
    path_.pop_back();
  }
  std::vector<std::pair<std::string, std::string>> keys;

 private:
  static const char* type_name(const std::string&) { return "string"; }
  static const char* type_name(bool) { return "boolean"; }
  static const char* type_name(double) { return "number"; }
  static const char* type_name(int64_t) { return "integer"; }
  static const char* type_name(const std::vector<int64_t>&) { return "list of integers"; }

  std::vector<std::string> path_;
};

/// Rules that involve several keys, and warnings about settings that will surprise.
void check_config(Config& config) {
  const auto& data = config.data;
  if (data.source == DataSource::csv && data.path.empty()) {
    throw InputError(config.location_of("data.source"), "data.path",
                     "a CSV file path for data.source: csv", "none");
  }
  if (config.loss == LossKind::logistic && data.source == DataSource::synthetic &&
      data.teacher() != TeacherKind::random_signs && !data.sign_labels()) {
    throw InputError(config.location_of("loss"), "data.sign_labels",
                     "true for loss: logistic (labels must be +1 or -1)", "false");
  }
  const auto& model = config.model;
  if (model.kind == ModelKind::single_layer && model.widths.size() != 1) {
    throw InputError(
        config.location_of("model.widths"), "model.widths",
        "exactly one hidden width [k] for model.kind: single_layer",
        fmt::format("[{}] ({} widths)", fmt::join(model.widths, ", "), model.widths.size()));
  }
  const int64_t depth = static_cast<int64_t>(model.widths.size()) + 1;
  long double total = model.activation.p();  // single_layer: L = q_1 = p (no output row)
  if (model.kind == ModelKind::feedforward) {
    total = 0;  // Σ p^(K−l)
    for (long double q = 1, l = 0; l < depth; ++l, q *= model.activation.p()) total += q;
  }
  if (total > 1.0e15L) {
    throw InputError(config.location_of("model.activation.p"), "model",
                     "a total degree L = sum p^(K-l) below 1e15",
                     fmt::format("p = {} with depth {}", model.activation.p(), depth));
  }
  const double degree = static_cast<double>(total);
  // The gradients at w_0 scale like δ^(L-1): below the dtype's smallest normal number they
  // are zero or denormal and nothing trains, however long (the run would "finish" at w_0).
  const bool float32 = config.dtype == torch::kFloat32;
  const double smallest =
      float32 ? std::numeric_limits<float>::min() : std::numeric_limits<double>::min();
  const double log_gradient = (degree - 1) * std::log10(config.init.scale);
  if (degree > 1 && log_gradient < std::log10(smallest)) {
    throw InputError(
        config.location_of("init.scale"), "init.scale",
        fmt::format("delta with delta^(L-1) above {}'s smallest normal number {:.3g} (the "
                    "gradients at w_0 scale like it)",
                    float32 ? "float32" : "float64", smallest),
        fmt::format("{:g} with L = {:g}: delta^(L-1) = 1e{:.0f}, nothing would train{}",
                    config.init.scale, degree, log_gradient,
                    float32 ? " (dtype: float64 reaches 2.2e-308)" : ""));
  }
  const double output_scale = std::pow(config.init.scale, degree);
  if (!float32 && output_scale < 1.0e-290) {
    log_warning(
        "{}: init.scale {:g} and total degree L = {:g}: outputs start near delta^L = {:.3g}, "
        "close to float64's underflow (~2.2e-308); the NCF's values lose precision",
        config.file, config.init.scale, degree, output_scale);
  }
  if (float32 && output_scale < 1.0e-30) {
    log_warning(
        "{}: dtype float32 with init.scale {:g} and total degree L = {:g}: outputs start near "
        "delta^L = {:.3g}, at or below float32's underflow (~1e-38); use dtype: float64",
        config.file, config.init.scale, degree, output_scale);
  }
  const double rtol_floor = minimum_rtol(config.dtype);
  if (config.train.integrator() == Integrator::gradient_flow && config.train.rtol() < rtol_floor) {
    log_warning("{}: train.rtol {:g} is below what {} resolves; the flow integrates at rtol {:.2g}",
                config.file, config.train.rtol(),
                config.dtype == torch::kFloat32 ? "float32" : "float64", rtol_floor);
  }
  if (config.init.scale >= config.train.escape_radius()) {
    log_warning(
        "{}: init.scale {:g} >= train.escape_radius {:g}: the run counts as escaped at step 0",
        config.file, config.init.scale, config.train.escape_radius());
  }
}

}  // namespace

std::vector<std::string> SlurmLauncherConfig::sbatch_options() const {
  std::vector<std::string> options;
  const std::pair<const char*, const std::string*> named[] = {{"partition", &partition},
                                                              {"account", &account},
                                                              {"qos", &qos},
                                                              {"time", &time},
                                                              {"mem", &mem},
                                                              {"gres", &gres},
                                                              {"constraint", &constraint}};
  for (const auto& [option, value] : named) {
    if (!value->empty()) options.push_back(fmt::format("--{}={}", option, *value));
  }
  if (cpus_per_task > 0) options.push_back(fmt::format("--cpus-per-task={}", cpus_per_task));
  std::istringstream words(extra);
  for (std::string word; words >> word;) options.push_back(word);
  return options;
}

SourceLocation Config::location_of(const std::string& key) const {
  const auto it = key_locations.find(key);
  return it != key_locations.end() ? it->second : SourceLocation{file, 0};
}

ParsedConfig::ParsedConfig(const std::string& yaml_text, std::string file)
    : file_(std::move(file)),
      root_(std::make_shared<const YAML::Node>(load_strict_yaml(yaml_text, file_))) {
  if (root_->IsNull() || !root_->IsDefined()) {
    throw InputError({file_, 0}, "", "a mapping of config keys", "an empty document");
  }
  if (!root_->IsMap())
    throw InputError({file_, 1}, "", "a mapping of config keys", describe_node(*root_));
  index_ = std::make_shared<const IndexedMapping>(*root_);
}

Config ParsedConfig::resolve(const std::vector<std::string>& overrides) const {
  Config config;
  config.file = file_;
  // The overrides' own tree, read over the file's: the file's tree is shared by every
  // resolve() and never written (yaml-cpp nodes share data when assigned).
  YAML::Node override_root(YAML::NodeType::Map);
  std::map<std::string, std::string> overridden;  // key path → "key=value" as typed
  for (const auto& assignment : overrides) {
    overridden[apply_override(override_root, *root_, assignment)] = assignment;
  }
  const IndexedMapping override_index(override_root);
  YamlReader reader(config, *index_, override_index, overridden);
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
                                           : std::filesystem::path(file_).parent_path();
    config.data.path = std::filesystem::absolute(base / data_path).lexically_normal().string();
  }
  check_config(config);
  return config;
}

Config parse_config(const std::string& yaml_text, const std::string& file,
                    const std::vector<std::string>& overrides) {
  return ParsedConfig(yaml_text, file).resolve(overrides);
}

std::string read_config_text(const std::string& path) {
  std::ifstream stream(path);
  if (!stream || std::filesystem::is_directory(path)) {
    throw InputError({path, 0}, "", "a readable YAML config file", "no such file");
  }
  std::string text = read_whole_file(path);
  require_utf8_text(text, path);
  return text;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(read_config_text(path), path, overrides);
}

std::string config_to_yaml(const Config& config) {
  YamlWriter writer;
  visit_config(const_cast<Config&>(config), writer);  // the writer only reads
  return writer.text;
}

std::vector<std::pair<std::string, std::string>> config_keys() {
  Config config;
  KeyLister lister;
  visit_config(config, lister);
  return lister.keys;
}

std::vector<std::string> config_key_paths() {
  std::vector<std::string> paths;
  for (const auto& key : config_keys()) paths.push_back(key.first);
  return paths;
}

}  // namespace ncflab

// Config loading: parse the YAML, merge the overrides, let the schema's visitor read
// every key, check the rules that span keys; and write a Config back as YAML.
#include "ncflab/experiment/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

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

std::map<std::string, std::string> override_table(const std::vector<std::string>& overrides,
                                                  YAML::Node& root) {
  std::map<std::string, std::string> table;
  for (const auto& assignment : overrides) table[apply_override(root, assignment)] = assignment;
  return table;
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

Config parse_config(const std::string& yaml_text, const std::string& file,
                    const std::vector<std::string>& overrides) {
  YAML::Node root = config_schema::load_strict_yaml(yaml_text, file);
  if (root.IsNull() || !root.IsDefined()) {
    throw InputError({file, 0}, "", "a mapping of config keys", "an empty document");
  }
  if (!root.IsMap())
    throw InputError({file, 1}, "", "a mapping of config keys", describe_node(root));

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
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(out);
  visit_config(const_cast<Config&>(config), writer);  // the writer only reads
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
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

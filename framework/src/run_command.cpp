// `ncflab run` (fresh or --resume) and `ncflab sweep` (a grid of runs and sweep.csv).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <ostream>
#include <sstream>

#include "ncflab/commands.h"
#include "ncflab/errors.h"
#include "ncflab/output.h"
#include "ncflab/run.h"

namespace ncflab {
namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream file(path);
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception&) {
    throw InputError({path.string(), 0}, "", "a JSON file written by ncflab", "unreadable JSON");
  }
}

RunOutcome resume_run(const RunArguments& arguments, std::ostream& out, std::ostream& err) {
  const std::filesystem::path directory = arguments.resume;
  const SourceLocation where{"command line", 0};
  if (!arguments.overrides.empty() || !arguments.config_path.empty()) {
    throw InputError(where, "--resume", "no config or overrides (the run's own config.yaml is used)",
                     fmt::format("'{}'", arguments.config_path.empty() ? arguments.overrides.front()
                                                                       : arguments.config_path));
  }
  if (!std::filesystem::is_regular_file(directory / "config.yaml")) {
    throw InputError(where, "--resume", "a run directory holding config.yaml",
                     fmt::format("'{}'", directory.string()));
  }
  if (!std::filesystem::exists(directory / kCheckpointFile)) {
    std::string found = "no checkpoint.pt";
    if (std::filesystem::exists(directory / kSummaryFile)) {
      found += fmt::format(" (the run ended with status {})",
                           read_json(directory / kSummaryFile).value("status", std::string("unknown")));
    }
    throw InputError({(directory / kCheckpointFile).string(), 0}, "--resume",
                     "a run directory with a checkpoint to continue from", found);
  }
  const Config config = load_config((directory / "config.yaml").string());
  RunSettings settings;
  settings.resume = true;
  settings.terminal = arguments.terminal;
  return run_experiment(config, directory, settings, out, err);
}

// "a,b,[1,2],range(0,1,0.25)" → the values, split at top-level commas; range(a, b, step)
// expands like Python's range (b excluded), for integers and decimals alike.
std::vector<std::string> sweep_values(const std::string& key, const std::string& text) {
  std::vector<std::string> values;
  std::string current;
  int depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{' || c == '(') ++depth;
    if (c == ']' || c == '}' || c == ')') --depth;
    if (c == ',' && depth == 0) {
      values.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  values.push_back(current);
  std::vector<std::string> expanded;
  const SourceLocation where{"command line", 0};
  for (const auto& value : values) {
    if (value.empty()) throw InputError(where, key, "comma-separated values", fmt::format("'{}'", text));
    if (value.rfind("range(", 0) != 0) {
      expanded.push_back(value);
      continue;
    }
    double a = 0, b = 0, step = 0;
    char close = 0;
    std::stringstream stream(value.substr(6));
    char comma1 = 0, comma2 = 0;
    if (!(stream >> a >> comma1 >> b >> comma2 >> step >> close) || comma1 != ',' || comma2 != ',' ||
        close != ')' || !(step > 0) || !(b > a)) {
      throw InputError(where, key, "range(start, stop, step) with stop > start and step > 0",
                       fmt::format("'{}'", value));
    }
    const auto count = static_cast<int64_t>(std::ceil((b - a) / step - 1e-9));
    if (count > 10000) throw InputError(where, key, "at most 10000 values", fmt::format("{}", count));
    for (int64_t i = 0; i < count; ++i) expanded.push_back(fmt::format("{}", a + static_cast<double>(i) * step));
  }
  return expanded;
}

// A directory name for one grid point: "003_init.scale=0.001_seed=2" (safe characters only).
std::string point_name(size_t index, const std::vector<std::pair<std::string, std::string>>& point) {
  std::string name = fmt::format("{:03}", index);
  for (const auto& [key, value] : point) {
    std::string clean;
    for (char c : value) clean += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
    name += fmt::format("_{}={}", key, clean);
  }
  return name;
}

// A CSV cell: quoted (RFC 4180) when it holds a comma, quote or line break, as swept
// values like [4,4] or {alpha: 0.1, p: 2} do.
std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string csv_number(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_number_integer()) return fmt::format("{}", value.get<int64_t>());
  if (value.is_number()) return fmt::format("{}", value.get<double>());  // shortest exact form
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return value.get<std::string>();
}

// `path` like "escape.step" inside `summary`, or null.
nlohmann::json lookup(const nlohmann::json& summary, const std::string& path) {
  const nlohmann::json* node = &summary;
  std::stringstream stream(path);
  for (std::string part; std::getline(stream, part, '.');) {
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
  }
  return *node;
}

}  // namespace

RunOutcome run_command(const RunArguments& arguments, std::ostream& out, std::ostream& err) {
  if (!arguments.resume.empty()) return resume_run(arguments, out, err);
  if (arguments.config_path.empty()) {
    throw InputError({"command line", 0}, "CONFIG", "a config file (or --resume RUN_DIR)", "none");
  }
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const auto directory =
      prepare_output_directory(config, "", arguments.out, arguments.overwrite, kSummaryFile);
  std::filesystem::remove(directory / kCheckpointFile);  // a stale one from an overwritten run
  RunSettings settings;
  settings.terminal = arguments.terminal;
  settings.overrides = arguments.overrides;
  return run_experiment(config, directory, settings, out, err);
}

SweepOutcome sweep_command(const CommandArguments& arguments, bool sequential, std::ostream& out,
                           std::ostream& err) {
  // Overrides with one value apply to every run; those with several span the grid.
  std::vector<std::string> fixed;
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& assignment : arguments.overrides) {
    const auto equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw InputError({"command line", 0}, "", "key.path=v1,v2,... or key.path=range(a,b,step)",
                       fmt::format("'{}'", assignment));
    }
    const std::string key = assignment.substr(0, equals);
    const auto values = sweep_values(key, assignment.substr(equals + 1));
    if (values.size() == 1) {
      fixed.push_back(key + "=" + values.front());
    } else {
      axes.emplace_back(key, values);
    }
  }
  if (axes.empty()) {
    throw InputError({"command line", 0}, "sweep", "at least one key with several values (key=v1,v2)",
                     "none");
  }
  // Check every grid point before running any: a typo must not surface after hours.
  std::vector<std::vector<std::pair<std::string, std::string>>> points{{}};
  for (const auto& [key, values] : axes) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& point : points) {
      for (const auto& value : values) {
        auto extended = point;
        extended.emplace_back(key, value);
        next.push_back(extended);
      }
    }
    points = std::move(next);
  }
  std::vector<Config> configs;
  std::vector<std::vector<std::string>> overrides_of;
  for (const auto& point : points) {
    auto overrides = fixed;
    for (const auto& [key, value] : point) overrides.push_back(key + "=" + value);
    configs.push_back(load_config(arguments.config_path, overrides));
    overrides_of.push_back(overrides);
  }
  const auto root = prepare_output_directory(configs.front(), "sweep", arguments.out,
                                             arguments.overwrite, "sweep.csv");
  const std::vector<std::string> fields = {
      "status", "delta", "steps", "escape.step", "escape.time", "escape.rescaled_time",
      "ncf_flow.blowup_time", "escape.rescaled_time_over_blowup_time", "final.cos_to_flow",
      "final.loss", "final.norm", "final.ncf", "final.kkt_residual", "wall_seconds",
      "steps_per_second"};
  std::string header = "run,directory";
  for (const auto& [key, values] : axes) header += "," + key;
  for (const auto& field : fields) header += "," + field;
  header += "\n";
  // Runs that differ only in δ (and seed, for CSV data) train together as one ensemble.
  std::vector<std::vector<size_t>> batches;
  for (size_t i = 0; i < points.size(); ++i) {
    auto batch = std::find_if(batches.begin(), batches.end(), [&](const std::vector<size_t>& b) {
      return !sequential && batchable(configs[b.front()], configs[i]);
    });
    if (batch == batches.end()) {
      batches.push_back({i});
    } else {
      batch->push_back(i);
    }
  }
  out << fmt::format("sweep: {} runs into {} ({} batch{})\n", points.size(), root.string(), batches.size(),
                     batches.size() == 1 ? "" : "es");
  std::vector<std::string> rows(points.size());
  int signal = 0;
  for (const auto& batch : batches) {
    std::vector<RunGroup> groups;
    std::string labels;
    for (size_t i : batch) {
      const auto directory = root / point_name(i, points[i]);
      const auto prepared = prepare_output_directory(configs[i], "", directory.string(), true, kSummaryFile);
      std::filesystem::remove(prepared / kCheckpointFile);
      groups.push_back({configs[i], prepared, overrides_of[i]});
      std::string label;
      for (const auto& [key, value] : points[i]) label += fmt::format(" {}={}", key, value);
      labels += fmt::format("\n  run {}:{}", i + 1, label);
    }
    out << fmt::format("sweep: {} run{} together:{}\n", batch.size(), batch.size() == 1 ? "" : "s", labels)
        << std::flush;
    const auto outcomes = run_batch(groups, RunSettings{}, out, err);
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t i = batch[b];
      std::string row = fmt::format("{},{}", i, csv_cell(groups[b].directory.filename().string()));
      for (const auto& [key, value] : points[i]) row += "," + csv_cell(value);
      for (const auto& field : fields) row += "," + csv_cell(csv_number(lookup(outcomes[b].summary, field)));
      rows[i] = row + "\n";
      if (outcomes[b].signal != 0) signal = outcomes[b].signal;
    }
    std::string csv = header;
    for (const auto& row : rows) csv += row;
    write_file_atomically(root / "sweep.csv", csv);
    if (signal != 0) {
      out << "sweep: interrupted; finished runs are in sweep.csv\n";
      break;
    }
  }
  out << fmt::format("sweep: wrote {}\n", (root / "sweep.csv").string());
  return {root, signal};
}

}  // namespace ncflab

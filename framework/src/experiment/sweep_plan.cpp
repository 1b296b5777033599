// Sweep planning: grid expansion, per-point configs, batching of points that differ
// only in δ (and seed for CSV data), and sweep.csv's cells (RFC 4180 quoting).
#include "ncflab/experiment/sweep_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <sstream>
#include <unordered_map>

#include "ncflab/core/errors.h"
#include "ncflab/core/signals.h"
#include "ncflab/experiment/batch_layout.h"

namespace ncflab {
namespace {

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

// key=v1,v2 → (key, values); one value makes a fixed override, several an axis.
void split_assignments(const std::vector<std::string>& assignments, SweepPlan& plan) {
  std::set<std::string> seen_keys;
  for (const auto& assignment : assignments) {
    const auto equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw InputError({"command line", 0}, "", "key.path=v1,v2,... or key.path=range(a,b,step)",
                       fmt::format("'{}'", assignment));
    }
    const std::string key = assignment.substr(0, equals);
    // A key twice would run every point twice over (seed=1,2 seed=3,4) or let the later
    // value win unseen; a value twice in one axis would run the same point twice.
    if (!seen_keys.insert(key).second) {
      throw InputError({"command line", 0}, key, "each key once in a sweep",
                       fmt::format("'{}' again in '{}'", key, assignment));
    }
    const auto values = sweep_values(key, assignment.substr(equals + 1));
    std::set<std::string> seen_values;
    for (const auto& value : values) {
      if (!seen_values.insert(value).second) {
        throw InputError({"command line", 0}, key, "distinct values",
                         fmt::format("'{}' twice in '{}'", value, assignment));
      }
    }
    if (values.size() == 1) {
      plan.fixed.push_back(key + "=" + values.front());
    } else {
      plan.axes.emplace_back(key, values);
    }
  }
  if (plan.axes.empty()) {
    throw InputError({"command line", 0}, "sweep",
                     "at least one key with several values (key=v1,v2)", "none");
  }
}

std::vector<SweepPoint> grid(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& axes) {
  std::vector<SweepPoint> points{{}};
  for (const auto& [key, values] : axes) {
    std::vector<SweepPoint> next;
    for (const auto& point : points) {
      for (const auto& value : values) {
        auto extended = point;
        extended.emplace_back(key, value);
        next.push_back(extended);
      }
    }
    points = std::move(next);
  }
  return points;
}

// Runs that differ only in δ (and seed, for CSV data) train together as one ensemble;
// one pass over the points, so a 10 000-point grid groups at once.
std::vector<std::vector<size_t>> batches_of(const std::vector<Config>& configs, bool sequential) {
  std::vector<std::vector<size_t>> batches;
  std::unordered_map<std::string, size_t> batch_of_key;
  for (size_t i = 0; i < configs.size(); ++i) {
    if (sequential) {
      batches.push_back({i});
      continue;
    }
    const auto [entry, added] = batch_of_key.emplace(batch_key(configs[i]), batches.size());
    if (added) batches.emplace_back();
    batches[entry->second].push_back(i);
  }
  return batches;
}

}  // namespace

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
    if (value.empty())
      throw InputError(where, key, "comma-separated values", fmt::format("'{}'", text));
    if (value.rfind("range(", 0) != 0) {
      expanded.push_back(value);
      continue;
    }
    double a = 0, b = 0, step = 0;
    char close = 0;
    std::stringstream stream(value.substr(6));
    char comma1 = 0, comma2 = 0;
    if (!(stream >> a >> comma1 >> b >> comma2 >> step >> close) || comma1 != ',' ||
        comma2 != ',' || close != ')' || !(step > 0) || !(b > a)) {
      throw InputError(where, key, "range(start, stop, step) with stop > start and step > 0",
                       fmt::format("'{}'", value));
    }
    const auto count = static_cast<int64_t>(std::ceil((b - a) / step - 1e-9));
    if (count > 10000)
      throw InputError(where, key, "at most 10000 values", fmt::format("{}", count));
    for (int64_t i = 0; i < count; ++i)
      expanded.push_back(fmt::format("{}", a + static_cast<double>(i) * step));
  }
  return expanded;
}

std::string point_name(size_t index, const SweepPoint& point) {
  std::string name = fmt::format("{:03}", index);
  for (const auto& [key, value] : point) {
    std::string clean;
    for (char c : value)
      clean += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
    name += fmt::format("_{}={}", key, clean);
  }
  return name;
}

SweepPlan plan_sweep(const std::string& config_path, const std::vector<std::string>& assignments,
                     bool sequential,
                     const std::function<void(size_t done, size_t total)>& progress) {
  SweepPlan plan;
  split_assignments(assignments, plan);
  plan.points = grid(plan.axes);
  // Check every grid point before running any: a typo must not surface after hours. The
  // file is read and parsed once, and resolved per point.
  const ParsedConfig parsed(read_config_text(config_path), config_path);
  for (size_t i = 0; i < plan.points.size(); ++i) {
    stop_if_interrupted("sweep planning");
    auto overrides = plan.fixed;
    for (const auto& [key, value] : plan.points[i]) overrides.push_back(key + "=" + value);
    plan.configs.push_back(parsed.resolve(overrides));
    plan.overrides.push_back(overrides);
    if (progress) progress(i + 1, plan.points.size());
  }
  plan.batches = batches_of(plan.configs, sequential);
  return plan;
}

const std::vector<std::string>& sweep_summary_fields() {
  static const std::vector<std::string> fields = {"status",
                                                  "delta",
                                                  "steps",
                                                  "gradient_evaluations",
                                                  "escape.step",
                                                  "escape.time",
                                                  "escape.rescaled_time",
                                                  "ncf_flow.blowup_time",
                                                  "escape.rescaled_time_over_blowup_time",
                                                  "final.cos_to_flow",
                                                  "final.loss",
                                                  "final.norm",
                                                  "final.ncf",
                                                  "final.kkt_residual",
                                                  "wall_seconds",
                                                  "steps_per_second"};
  return fields;
}

std::string sweep_csv_header(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& axes) {
  std::string header = "run,directory";
  for (const auto& axis : axes) header += "," + axis.first;
  for (const auto& field : sweep_summary_fields()) header += "," + field;
  return header + "\n";
}

std::string sweep_csv_row(size_t index, const std::string& directory, const SweepPoint& point,
                          const nlohmann::json& summary) {
  std::string row = fmt::format("{},{}", index, csv_cell(directory));
  for (const auto& entry : point) row += "," + csv_cell(entry.second);
  for (const auto& field : sweep_summary_fields()) {
    row += "," + csv_cell(csv_number(lookup(summary, field)));
  }
  return row + "\n";
}

}  // namespace ncflab

// The sweep directory: plan.json written once at the start and read by every task, each
// point's state read off its summary.json, and sweep.csv collected from those.
#include "ncflab/experiment/sweep_directory.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/signals.h"
#include "ncflab/experiment/run_directory.h"

namespace ncflab {
namespace {

using nlohmann::json;

constexpr int kPlanVersion = 1;

// summary.json of a point, or null when it has none (not started, or killed before the end).
json point_summary(const std::filesystem::path& directory) {
  const auto path = directory / kSummaryFile;
  if (!std::filesystem::exists(path)) return nullptr;
  std::ifstream file(path);
  try {
    return json::parse(file);
  } catch (const json::exception&) {
    return nullptr;  // summaries are written atomically: this one is not ncflab's
  }
}

// A run has finished when its summary holds a final status (not interrupted or failed).
bool has_final_status(const json& summary) {
  if (!summary.is_object()) return false;
  const std::string status = summary.value("status", std::string());
  return !status.empty() && status != "interrupted" && status != "failed";
}

json manifest_to_json(const SweepManifest& manifest) {
  json points = json::array();
  for (size_t i = 0; i < manifest.points.size(); ++i) {
    json values = json::array();
    for (const auto& [key, value] : manifest.points[i]) values.push_back({key, value});
    points.push_back(
        {{"name", manifest.names[i]}, {"values", values}, {"overrides", manifest.overrides[i]}});
  }
  json axes = json::array();
  for (const auto& [key, values] : manifest.axes) axes.push_back({key, values});
  return {{"version", kPlanVersion},
          {"config", manifest.config_path},
          {"grid", manifest.assignments},
          {"axes", axes},
          {"points", points},
          {"batches", manifest.batches},
          {"tasks", manifest.tasks}};
}

SweepManifest manifest_from_json(const json& plan) {
  SweepManifest manifest;
  manifest.config_path = plan.at("config").get<std::string>();
  manifest.assignments = plan.at("grid").get<std::vector<std::string>>();
  for (const auto& axis : plan.at("axes")) {
    manifest.axes.emplace_back(axis.at(0).get<std::string>(),
                               axis.at(1).get<std::vector<std::string>>());
  }
  for (const auto& point : plan.at("points")) {
    SweepPoint values;
    for (const auto& value : point.at("values")) {
      values.emplace_back(value.at(0).get<std::string>(), value.at(1).get<std::string>());
    }
    manifest.points.push_back(values);
    manifest.names.push_back(point.at("name").get<std::string>());
    manifest.overrides.push_back(point.at("overrides").get<std::vector<std::string>>());
  }
  manifest.batches = plan.at("batches").get<std::vector<std::vector<size_t>>>();
  manifest.tasks = plan.at("tasks").get<std::vector<std::vector<size_t>>>();
  for (const auto& batch : manifest.batches) {
    for (size_t point : batch) {
      if (point >= manifest.points.size()) throw std::out_of_range("point index");
    }
  }
  for (const auto& task : manifest.tasks) {
    for (size_t batch : task) {
      if (batch >= manifest.batches.size()) throw std::out_of_range("batch index");
    }
  }
  return manifest;
}

}  // namespace

std::vector<std::vector<size_t>> split_into_tasks(size_t batches, size_t tasks) {
  if (tasks == 0 || tasks > batches) tasks = batches;
  std::vector<std::vector<size_t>> shares(tasks);
  for (size_t t = 0, next = 0; t < tasks; ++t) {
    // The first (batches mod tasks) shares take one batch more.
    const size_t size = batches / tasks + (t < batches % tasks ? 1 : 0);
    for (size_t k = 0; k < size; ++k) shares[t].push_back(next++);
  }
  return shares;
}

SweepManifest write_sweep_plan(const SweepPlan& plan, const std::string& config_path,
                               const std::vector<std::string>& assignments, size_t tasks,
                               const std::filesystem::path& root,
                               const std::function<void(size_t done, size_t total)>& progress) {
  SweepManifest manifest;
  manifest.config_path = std::filesystem::absolute(config_path).string();
  manifest.assignments = assignments;
  manifest.axes = plan.axes;
  manifest.points = plan.points;
  manifest.overrides = plan.overrides;
  manifest.batches = plan.batches;
  manifest.tasks = split_into_tasks(plan.batches.size(), tasks);
  // A batch checkpoint of an overwritten sweep must never be taken for this one's.
  std::filesystem::remove_all(root / "checkpoints");
  for (size_t i = 0; i < plan.points.size(); ++i) {
    stop_if_interrupted("sweep planning");
    manifest.names.push_back(point_name(i, plan.points[i]));
    const auto directory = root / manifest.names.back();
    std::filesystem::create_directories(directory);
    write_file_atomically(directory / kConfigFile, config_to_yaml(plan.configs[i]),
                          Durability::unsynced);
    if (progress) progress(i + 1, plan.points.size());
  }
  write_file_atomically(root / kSweepPlanFile, manifest_to_json(manifest).dump(1) + "\n");
  return manifest;
}

SweepManifest read_sweep_plan(const std::filesystem::path& root) {
  const auto path = root / kSweepPlanFile;
  if (!std::filesystem::is_regular_file(path)) {
    throw InputError({"command line", 0}, "DIR", "a sweep directory holding plan.json",
                     fmt::format("'{}'", root.string()));
  }
  std::ifstream file(path);
  try {
    const json plan = json::parse(file);
    if (plan.value("version", 0) != kPlanVersion) {
      throw InputError({path.string(), 0}, "version", fmt::format("{}", kPlanVersion),
                       plan.contains("version") ? plan["version"].dump() : "none");
    }
    return manifest_from_json(plan);
  } catch (const json::exception& e) {
    throw InputError({path.string(), 0}, "plan.json", "a sweep plan written by ncflab", e.what());
  } catch (const std::out_of_range&) {
    throw InputError({path.string(), 0}, "plan.json", "a sweep plan written by ncflab",
                     "an index out of range");
  }
}

bool point_finished(const std::filesystem::path& root, const SweepManifest& manifest,
                    size_t point) {
  return has_final_status(point_summary(root / manifest.names.at(point)));
}

bool batch_finished(const std::filesystem::path& root, const SweepManifest& manifest,
                    size_t batch) {
  for (size_t point : manifest.batches.at(batch)) {
    if (!point_finished(root, manifest, point)) return false;
  }
  return true;
}

bool task_finished(const std::filesystem::path& root, const SweepManifest& manifest, size_t task) {
  for (size_t batch : manifest.tasks.at(task)) {
    if (!batch_finished(root, manifest, batch)) return false;
  }
  return true;
}

std::filesystem::path batch_checkpoint(const std::filesystem::path& root, size_t batch) {
  return root / "checkpoints" / fmt::format("batch_{:03}.pt", batch);
}

std::string sweep_row(const std::filesystem::path& root, const SweepManifest& manifest,
                      size_t point) {
  const json summary = point_summary(root / manifest.names.at(point));
  if (!summary.is_object()) return "";
  return sweep_csv_row(point, manifest.names[point], manifest.points[point], summary);
}

void write_sweep_csv(const std::filesystem::path& root, const SweepManifest& manifest,
                     const std::vector<std::string>& rows) {
  std::string csv = sweep_csv_header(manifest.axes);
  for (const auto& row : rows) csv += row;
  write_file_atomically(root / kSweepCsvFile, csv);
}

SweepCollection collect_sweep(const std::filesystem::path& root, const SweepManifest& manifest) {
  SweepCollection collection;
  std::vector<std::string> rows(manifest.points.size());
  for (size_t i = 0; i < manifest.points.size(); ++i) {
    const json summary = point_summary(root / manifest.names[i]);
    if (summary.is_object()) {
      rows[i] = sweep_csv_row(i, manifest.names[i], manifest.points[i], summary);
      ++collection.rows;
    }
    if (!has_final_status(summary)) collection.unfinished.push_back(i);
  }
  write_sweep_csv(root, manifest, rows);
  return collection;
}

}  // namespace ncflab

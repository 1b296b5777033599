// Planning a sweep (`ncflab sweep CONFIG key=v1,v2 ...`): the grid of points, each
// point's overrides and directory name, which points train together as one ensemble,
// and the rows of sweep.csv.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/experiment/config.h"

namespace ncflab {

/// One grid point: the swept keys and their values, in the order the axes were given.
using SweepPoint = std::vector<std::pair<std::string, std::string>>;

struct SweepPlan {
  std::vector<std::string> fixed;  ///< overrides with one value: they apply to every point
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  ///< swept keys
  std::vector<SweepPoint> points;                   ///< the grid, last axis fastest
  std::vector<Config> configs;                      ///< each point's config, loaded and checked
  std::vector<std::vector<std::string>> overrides;  ///< each point's overrides
  std::vector<std::vector<size_t>> batches;         ///< points that train as one ensemble
};

/// "a,b,[1,2],range(0,1,0.25)" → the values, split at top-level commas; range(a, b, step)
/// expands like Python's range (b excluded), for integers and decimals alike. Throws
/// InputError naming `key` for empty values or a bad range.
std::vector<std::string> sweep_values(const std::string& key, const std::string& text);

/// The grid of `assignments` (key=v1,v2 or key=range(...)) over the config at
/// `config_path`, every point loaded (a typo fails before anything runs) and grouped
/// into batches of batchable points unless `sequential`. `progress(done, total)` is called
/// after each point (planning 10 000 points takes seconds; the caller shows a line).
SweepPlan plan_sweep(const std::string& config_path, const std::vector<std::string>& assignments,
                     bool sequential,
                     const std::function<void(size_t done, size_t total)>& progress = {});

/// A directory name for point `index`: "003_init.scale=0.001_seed=2" (safe characters only).
std::string point_name(size_t index, const SweepPoint& point);

/// The summary fields sweep.csv shows for every run, as paths into summary.json.
const std::vector<std::string>& sweep_summary_fields();

/// sweep.csv's header: run, directory, the swept keys, the summary fields.
std::string sweep_csv_header(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& axes);

/// One row of sweep.csv for point `index` written into `directory`.
std::string sweep_csv_row(size_t index, const std::string& directory, const SweepPoint& point,
                          const nlohmann::json& summary);

}  // namespace ncflab

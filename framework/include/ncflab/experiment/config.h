// Typed experiment settings (SPEC §4) with their defaults, loaded from YAML plus
// Hydra-style `key.path=value` overrides, validated where they enter.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/core/errors.h"
#include "ncflab/model/activation.h"
#include "ncflab/model/data.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/model/loss.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/ncf/kkt.h"
#include "ncflab/ncf/structure.h"

namespace YAML {
class Node;
}
namespace ncflab::config_schema {
class IndexedMapping;
}
#include "ncflab/train/engine.h"
#include "ncflab/train/trainer.h"

namespace ncflab {

enum class DeviceChoice { cpu, cuda, automatic };
enum class DataSource { synthetic, csv };

// Each section holds the options of the component it configures (the visitor in
// config.cpp fills them directly), plus the few keys that only a run uses.

/// data.*: the synthetic generator's options (n, d, inputs, teacher, teacher_width,
/// label_noise, sign_labels; teacher_activation and seed come from model.activation and
/// seed) and where else data can come from.
struct DataConfig : SyntheticDataOptions {
  DataSource source = DataSource::synthetic;
  std::string path;   ///< csv: resolved against the config file's folder when set there
  std::string label;  ///< csv: the label column; empty: the last column
  InputNormalization normalize = InputNormalization::none;  ///< both sources
};

/// model.*: what FeedForwardOptions takes from the config (model_options() adds the
/// input dimension, ensemble size, δ, seed and dtype).
struct ModelConfig {
  ModelKind kind = ModelKind::feedforward;  ///< single_layer: H = Σ_j σ(w_jᵀx), widths [k]
  std::vector<int64_t> widths = {20};
  /// The quickstart's polynomial Leaky ReLU (p = 2, so L = 3 for one hidden layer).
  PolyLeakyReLUOptions activation = PolyLeakyReLUOptions().alpha(0.2).p(2);
};

struct InitConfig {
  double scale = 1.0e-3;  ///< δ (init_scale); each member starts at δ·w0
};

/// train.*: the trainer's options (train.step is TrainerOptions::step_size, η) and when
/// the run's checkpoint and snapshot hooks write.
struct TrainConfig : TrainerOptions {
  // 0: a run picks the flow's row spacing from T* (resolve_log_interval).
  TrainConfig() { log_interval(0.0); }
  int64_t checkpoint_every = 10000;  ///< 0: only on interrupt
  int64_t snapshot_every = 0;        ///< > 0: keep w every this many steps (weights_trajectory.pt)
};

enum class Switch { automatic, on, off };

struct HooksConfig {
  bool kkt = true;                           ///< N(û), residuals and cosines to the flow
  bool kkt_search = false;                   ///< also search KKT points (kkt.*) and log cos_to_kkt
  Switch kink_residual = Switch::automatic;  ///< auto: for p = 1 nets
  bool layers = true;                        ///< per-layer norms, shares and σ₂/σ₁
  Switch progress = Switch::automatic;       ///< auto: on, redrawn in place on a terminal
  double progress_seconds = 2.0;             ///< seconds between progress lines
};

struct EnsembleConfig {
  int64_t seeds = 1;  ///< S; member s uses seed + s
};

/// kkt.*: the KKT search's options (seeded by the top-level seed) and the structure
/// analysis' rank-one tolerance (kkt.rank_one_tol).
struct KktConfig : KktSearchOptions {
  StructureOptions structure;
};

/// flow.*: the NCF-flow integrator's options and whether `ncflab run` integrates it.
struct FlowConfig : FlowOptions {
  bool enabled = true;  ///< ncflab run integrates the flow from its own w0
};

/// launcher.slurm.*: the sbatch options a lab sets once for `ncflab sweep --launcher slurm`
/// (empty or 0: not given, SLURM's default).
struct SlurmLauncherConfig {
  std::string partition;
  std::string account;
  std::string qos;
  std::string time;  ///< a SLURM time limit per task, e.g. "1:00:00"
  std::string mem;   ///< memory per node, e.g. "4G"
  std::string gres;  ///< generic resources, e.g. "gpu:1"
  std::string constraint;
  int64_t cpus_per_task = 0;
  std::string extra;  ///< more sbatch options, separated by spaces: "--exclusive --nice=10"

  /// The sbatch options these keys give, in this order: {"--partition=gpu", …}.
  std::vector<std::string> sbatch_options() const;
};

struct LauncherConfig {
  SlurmLauncherConfig slurm;
};

struct Config {
  std::string name = "quickstart";
  int64_t seed = 0;
  DeviceChoice device = DeviceChoice::automatic;
  torch::Dtype dtype = torch::kFloat64;
  int64_t threads = 0;  ///< CPU threads for LibTorch and the fused engine; 0: every logical core
  DataConfig data;
  ModelConfig model;
  LossKind loss = LossKind::square;
  InitConfig init;
  TrainConfig train;
  EnsembleConfig ensemble;
  HooksConfig hooks;
  KktConfig kkt;
  FlowConfig flow;
  LauncherConfig launcher;

  /// Where each key was set ("train.step" → file and line, or the override), so
  /// checks made after loading can still point at the right line.
  std::map<std::string, SourceLocation> key_locations;

  /// The location of `key`, or just the config file when the key kept its default.
  SourceLocation location_of(const std::string& key) const;
  /// The config file (empty for a default-constructed Config).
  std::string file;
};

/// The text of the config file at `path`: a missing file or a directory is an InputError,
/// a read error an IoError, text that is not UTF-8 an InputError at its line.
std::string read_config_text(const std::string& path);

/// Reads `path`, applies `overrides` ("key.path=value", value in YAML syntax:
/// `model.widths=[12,12]`), checks types, ranges and cross-key rules.
/// Throws InputError naming file, line, key, expectation and what was found.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// As load_config, from YAML text (`file` only names it in errors and resolves paths).
Config parse_config(const std::string& yaml_text, const std::string& file,
                    const std::vector<std::string>& overrides = {});

/// A config's YAML parsed once and resolved with many sets of overrides: sweep planning
/// resolves every point of a 10 000-point grid without parsing the file 10 000 times.
/// `resolve(overrides)` gives what parse_config(yaml_text, file, overrides) gives.
class ParsedConfig {
 public:
  ParsedConfig(const std::string& yaml_text, std::string file);
  Config resolve(const std::vector<std::string>& overrides = {}) const;

 private:
  std::string file_;
  std::shared_ptr<const YAML::Node> root_;  // never changed: overrides go into their own tree
  std::shared_ptr<const config_schema::IndexedMapping> index_;  // root_'s keys, for lookups
};

/// The resolved config as YAML (every key, defaults filled in); parse_config reads it back.
std::string config_to_yaml(const Config& config);

/// Every key path the config understands, e.g. "train.step", in file order.
std::vector<std::string> config_key_paths();

/// Every key path with the kind of value it takes, in file order: "string", "boolean",
/// "number", "integer", "list of integers" or "one of a | b | c".
std::vector<std::pair<std::string, std::string>> config_keys();

}  // namespace ncflab

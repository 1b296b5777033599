// Typed experiment settings (SPEC §4) with their defaults, loaded from YAML plus
// Hydra-style `key.path=value` overrides, validated where they enter.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ncflab/data.h"
#include "ncflab/engine.h"
#include "ncflab/errors.h"
#include "ncflab/feedforward.h"
#include "ncflab/loss.h"

namespace ncflab {

enum class DeviceChoice { cpu, cuda, automatic };
enum class DataSource { synthetic, csv };

struct DataConfig {
  DataSource source = DataSource::synthetic;
  // synthetic
  int64_t n = 100;
  int64_t d = 10;
  InputDistribution inputs = InputDistribution::gaussian;
  TeacherKind teacher = TeacherKind::neuron;
  int64_t teacher_width = 2;
  double label_noise = 0.0;
  bool sign_labels = false;
  // csv
  std::string path;   ///< resolved against the config file's folder when set there
  std::string label;  ///< empty: the last column
  // both
  InputNormalization normalize = InputNormalization::none;
};

struct ActivationConfig {
  double alpha = 0.2;
  int64_t p = 2;
};

struct ModelConfig {
  ModelKind kind = ModelKind::feedforward;  ///< single_layer: H = Σ_j σ(w_jᵀx), widths [k]
  std::vector<int64_t> widths = {20};
  ActivationConfig activation;
};

struct InitConfig {
  double scale = 1.0e-3;  ///< δ
};

struct TrainConfig {
  double step = 1.0e-2;  ///< η
  int64_t max_steps = 100000;
  double escape_radius = 0.1;
  bool stop_at_escape = true;
  int64_t log_every = 100;
  EngineKind engine = EngineKind::automatic;
  int64_t checkpoint_every = 10000;  ///< 0: only on interrupt
  int64_t snapshot_every = 0;  ///< > 0: keep w every this many steps (weights_trajectory.pt)
};

enum class Switch { automatic, on, off };

struct HooksConfig {
  bool kkt = true;                        ///< N(û), residuals and cosines to the flow
  bool kkt_search = false;                ///< also search KKT points (kkt.*) and log cos_to_kkt
  Switch kink_residual = Switch::automatic;  ///< auto: for p = 1 nets
  bool layers = true;                     ///< per-layer norms, shares and σ₂/σ₁
  Switch progress = Switch::automatic;    ///< auto: on, redrawn in place on a terminal
  double progress_seconds = 2.0;          ///< seconds between progress lines
};

struct EnsembleConfig {
  int64_t seeds = 1;  ///< S; member s uses seed + s
};

struct KktConfig {
  int64_t restarts = 32;
  double tol = 1.0e-10;
  int64_t max_iterations = 20000;
  double kink_tol = 1.0e-6;
  double rank_one_tol = 1.0e-4;
};

struct FlowConfig {
  double max_norm = 1.0e4;
  double rtol = 1.0e-10;
  double atol = 1.0e-14;
  int64_t max_steps = 1000000;
  double max_time = 1.0e6;
  int64_t record_every = 10;
  bool enabled = true;  ///< ncflab run integrates the flow from its own w0
  double kink_step = 1.0e-4;  ///< p = 1: steps moving u by ≤ kink_step·‖u‖ always accepted
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

  /// Where each key was set ("train.step" → file and line, or the override), so
  /// checks made after loading can still point at the right line.
  std::map<std::string, SourceLocation> key_locations;

  /// The location of `key`, or just the config file when the key kept its default.
  SourceLocation location_of(const std::string& key) const;
  /// The config file (empty for a default-constructed Config).
  std::string file;
};

/// Reads `path`, applies `overrides` ("key.path=value", value in YAML syntax:
/// `model.widths=[12,12]`), checks types, ranges and cross-key rules.
/// Throws InputError naming file, line, key, expectation and what was found.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// As load_config, from YAML text (`file` only names it in errors and resolves paths).
Config parse_config(const std::string& yaml_text, const std::string& file,
                    const std::vector<std::string>& overrides = {});

/// The resolved config as YAML (every key, defaults filled in); parse_config reads it back.
std::string config_to_yaml(const Config& config);

/// Every key path the config understands, e.g. "train.step", in file order.
std::vector<std::string> config_key_paths();

}  // namespace ncflab

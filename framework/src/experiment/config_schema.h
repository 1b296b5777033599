// The config's keys (internal): one visitor walks every key once, and the reader, the
// writer and the key list reuse that walk, so a key added here is parsed, range-checked,
// echoed into config.yaml and listed, all at once.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/experiment/config.h"

namespace ncflab::config_schema {

/// Returns "" when the value is acceptable, else what was expected ("a number > 0").
template <typename T>
using Check = std::function<std::string(const T&)>;

template <typename E>
using Choices = std::vector<std::pair<const char*, E>>;

inline Check<double> greater_than(double bound) {
  return
      [bound](const double& v) { return v > bound ? "" : fmt::format("a number > {:g}", bound); };
}
inline Check<double> at_least(double bound) {
  return
      [bound](const double& v) { return v >= bound ? "" : fmt::format("a number >= {:g}", bound); };
}
inline Check<double> within(double low, double high) {
  return [=](const double& v) {
    return v >= low && v <= high ? "" : fmt::format("a number in [{:g}, {:g}]", low, high);
  };
}
inline Check<int64_t> at_least_int(int64_t bound) {
  return [bound](const int64_t& v) {
    return v >= bound ? "" : fmt::format("an integer >= {}", bound);
  };
}
inline Check<int64_t> within_int(int64_t low, int64_t high) {
  return [=](const int64_t& v) {
    return v >= low && v <= high ? "" : fmt::format("an integer in [{}, {}]", low, high);
  };
}
inline Check<std::vector<int64_t>> positive_widths() {
  return [](const std::vector<int64_t>& widths) -> std::string {
    if (widths.empty()) return "a non-empty list of hidden widths (depth K = len + 1 >= 2)";
    for (int64_t w : widths) {
      if (w < 1) return "hidden widths >= 1";
    }
    return "";
  };
}
inline Check<std::string> anything() {
  return [](const std::string&) { return std::string(); };
}

/// data.*: the synthetic generator's options and the CSV source.
template <typename Visitor>
void visit_data(Config& c, Visitor& v) {
  v.section("data", [&] {
    auto& d = c.data;
    v.choice("source", d.source,
             Choices<DataSource>{{"synthetic", DataSource::synthetic}, {"csv", DataSource::csv}});
    v.field("n", d.n(), at_least_int(1));
    v.field("d", d.d(), at_least_int(1));
    v.choice("inputs", d.inputs(),
             Choices<InputDistribution>{{"gaussian", InputDistribution::gaussian},
                                        {"sphere", InputDistribution::sphere}});
    v.choice("teacher", d.teacher(),
             Choices<TeacherKind>{{"neuron", TeacherKind::neuron},
                                  {"two_layer", TeacherKind::two_layer},
                                  {"random_signs", TeacherKind::random_signs}});
    v.field("teacher_width", d.teacher_width(), at_least_int(1));
    v.field("label_noise", d.label_noise(), at_least(0.0));
    v.field("sign_labels", d.sign_labels());
    v.field("path", d.path, anything());
    v.field("label", d.label, anything());
    v.choice("normalize", d.normalize,
             Choices<InputNormalization>{{"none", InputNormalization::none},
                                         {"standardize", InputNormalization::standardize},
                                         {"sphere", InputNormalization::sphere}});
  });
}
/// model.*: kind, widths and the activation.
template <typename Visitor>
void visit_model(Config& c, Visitor& v) {
  v.section("model", [&] {
    v.choice("kind", c.model.kind,
             Choices<ModelKind>{{"feedforward", ModelKind::feedforward},
                                {"single_layer", ModelKind::single_layer}});
    v.field("widths", c.model.widths, positive_widths());
    v.section("activation", [&] {
      v.field("alpha", c.model.activation.alpha(), within(-1.0, 1.0));
      v.field("p", c.model.activation.p(), within_int(1, 100));
    });
  });
}
/// train.*: the trainer's options and when checkpoints and snapshots are written.
template <typename Visitor>
void visit_train(Config& c, Visitor& v) {
  v.section("train", [&] {
    v.choice("integrator", c.train.integrator(),
             Choices<Integrator>{{"gd", Integrator::gradient_descent},
                                 {"flow", Integrator::gradient_flow}});
    v.field("step", c.train.step_size(), greater_than(0.0));
    v.field("max_steps", c.train.max_steps(), at_least_int(1));
    v.field("max_time", c.train.max_time(), at_least(0.0));
    v.field("escape_radius", c.train.escape_radius(), greater_than(0.0));
    v.field("stop_at_escape", c.train.stop_at_escape());
    v.field("log_every", c.train.log_every(), at_least_int(1));
    v.field("log_interval", c.train.log_interval(), at_least(0.0));
    v.field("rtol", c.train.rtol(), Check<double>([](const double& r) {
              return r > 0 && r < 1 ? "" : "a number in (0, 1)";
            }));
    v.field("atol", c.train.atol(), at_least(0.0));
    v.field("kink_step", c.train.kink_step(), within(0.0, 0.1));
    v.choice("engine", c.train.engine(),
             Choices<EngineKind>{{"auto", EngineKind::automatic},
                                 {"fused", EngineKind::fused},
                                 {"batched", EngineKind::batched},
                                 {"autograd", EngineKind::autograd}});
    v.field("sync_every", c.train.sync_every(), at_least_int(0));
    v.field("cuda_graph", c.train.cuda_graph());
    v.field("checkpoint_every", c.train.checkpoint_every, at_least_int(0));
    v.field("snapshot_every", c.train.snapshot_every, at_least_int(0));
  });
}
/// hooks.*: which hooks a run installs.
template <typename Visitor>
void visit_hooks(Config& c, Visitor& v) {
  v.section("hooks", [&] {
    const Choices<Switch> switches{
        {"auto", Switch::automatic}, {"true", Switch::on}, {"false", Switch::off}};
    v.field("kkt", c.hooks.kkt);
    v.field("kkt_search", c.hooks.kkt_search);
    v.choice("kink_residual", c.hooks.kink_residual, switches);
    v.field("layers", c.hooks.layers);
    v.choice("progress", c.hooks.progress, switches);
    v.field("progress_seconds", c.hooks.progress_seconds, greater_than(0.0));
  });
}
/// kkt.*: the KKT search and the rank-one tolerance of its structure analysis.
template <typename Visitor>
void visit_kkt(Config& c, Visitor& v) {
  v.section("kkt", [&] {
    v.field("restarts", c.kkt.restarts(), at_least_int(1));
    v.field("tol", c.kkt.tol(), greater_than(0.0));
    v.field("max_iterations", c.kkt.max_iterations(), at_least_int(1));
    v.field("kink_tol", c.kkt.kink_tol(), greater_than(0.0));
    v.field("rank_one_tol", c.kkt.structure.rank_one_tol(), greater_than(0.0));
  });
}
/// flow.*: the NCF-flow integrator and whether a run integrates it.
template <typename Visitor>
void visit_flow(Config& c, Visitor& v) {
  v.section("flow", [&] {
    v.field("rtol", c.flow.rtol(), within(1e-15, 0.1));
    v.field("direction_tol", c.flow.direction_tol(), within(1e-15, 0.1));
    v.field("stall_tol", c.flow.stall_tol(), within(0.0, 0.1));
    v.field("max_norm", c.flow.max_norm(), at_least(0.0));
    v.field("max_steps", c.flow.max_steps(), at_least_int(1));
    v.field("max_time", c.flow.max_time(), at_least(0.0));
    v.field("record_every", c.flow.record_every(), at_least_int(1));
    v.field("enabled", c.flow.enabled);
  });
}

/// launcher.*: how `ncflab sweep --launcher slurm` submits its job array.
template <typename Visitor>
void visit_launcher(Config& c, Visitor& v) {
  v.section("launcher", [&] {
    v.section("slurm", [&] {
      auto& slurm = c.launcher.slurm;
      v.field("partition", slurm.partition, anything());
      v.field("account", slurm.account, anything());
      v.field("qos", slurm.qos, anything());
      v.field("time", slurm.time, anything());
      v.field("mem", slurm.mem, anything());
      v.field("gres", slurm.gres, anything());
      v.field("constraint", slurm.constraint, anything());
      v.field("cpus_per_task", slurm.cpus_per_task, within_int(0, 100000));
      v.field("extra", slurm.extra, Check<std::string>([](const std::string& s) {
                return s.empty() || s.rfind("-", 0) == 0 ? ""
                                                         : "sbatch options, '--name=value ...'";
              }));
    });
  });
}

/// The one list of config keys, in the order config.yaml shows them.
template <typename Visitor>
void visit_config(Config& c, Visitor& v) {
  // The name becomes a directory name (with a suffix for sweeps): well inside NAME_MAX = 255.
  v.field("name", c.name, Check<std::string>([](const std::string& s) {
            const bool control = std::any_of(s.begin(), s.end(), [](char character) {
              return static_cast<unsigned char>(character) < 0x20 || character == 0x7f;
            });
            return s.empty() || s.find('/') != std::string::npos || s.size() > 200 || control
                       ? "a non-empty name without '/' of at most 200 characters (and no "
                         "control characters)"
                       : "";
          }));
  v.field("seed", c.seed, at_least_int(0));
  v.choice("device", c.device,
           Choices<DeviceChoice>{{"auto", DeviceChoice::automatic},
                                 {"cpu", DeviceChoice::cpu},
                                 {"cuda", DeviceChoice::cuda}});
  v.choice("dtype", c.dtype,
           Choices<torch::Dtype>{{"float64", torch::kFloat64}, {"float32", torch::kFloat32}});
  // Threads are spawned up front: 100 000 of them hang the machine before anything runs.
  v.field("threads", c.threads, within_int(0, 1024));
  visit_data(c, v);
  visit_model(c, v);
  v.choice("loss", c.loss,
           Choices<LossKind>{{"square", LossKind::square}, {"logistic", LossKind::logistic}});
  v.section("init", [&] { v.field("scale", c.init.scale, greater_than(0.0)); });
  visit_train(c, v);
  v.section("ensemble", [&] { v.field("seeds", c.ensemble.seeds, at_least_int(1)); });
  visit_hooks(c, v);
  visit_kkt(c, v);
  visit_flow(c, v);
  visit_launcher(c, v);
}

}  // namespace ncflab::config_schema

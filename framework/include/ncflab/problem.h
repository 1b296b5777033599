// The concrete problem a config describes: data on the chosen device and dtype,
// the ensemble model initialised at scale δ, and the loss. Config → Problem is
// the one place where settings turn into tensors.
#pragma once

#include <torch/torch.h>

#include <string>

#include "ncflab/config.h"
#include "ncflab/data.h"
#include "ncflab/feedforward.h"
#include "ncflab/flow.h"
#include "ncflab/kkt.h"

namespace ncflab {

struct Problem {
  Config config;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat64;
  Dataset data;       ///< inputs [n, d] and labels [n] on `device`, in `dtype`
  FeedForward model;  ///< S = ensemble.seeds members, w = δ·w0, member s seeded seed + s
  torch::Tensor ncf_labels;  ///< ȳ [n] on `device`

  Problem() : model(nullptr) {}
};

/// cpu, cuda or (auto) cuda when LibTorch has CUDA and a GPU is present, else cpu.
/// Asking for cuda without one is bad input (InputError at the `device` key).
torch::Device resolve_device(const Config& config);

/// Reads or draws the data set (float64, CPU), normalises it and checks the labels
/// against the loss. Throws InputError for unreadable or unsuitable data.
Dataset load_data(const Config& config);

/// Data, model and NCF labels for `config`, on its device and dtype.
Problem build_problem(const Config& config);

/// The NCF-flow integrator settings of `config` (flow.*; kink_step only for p = 1).
FlowOptions flow_options(const Config& config);

/// The KKT-search settings of `config` (kkt.*, seeded by `seed`).
KktSearchOptions kkt_search_options(const Config& config);

/// A few lines a researcher reads before a run: data, model, degrees, scales.
std::string describe_problem(const Problem& problem);

}  // namespace ncflab

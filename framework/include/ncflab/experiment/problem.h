// The concrete problem a config describes: data on the chosen device and dtype,
// the ensemble model initialised at scale δ, and the loss. Config → Problem is
// the one place where settings turn into tensors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/model/data.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/ncf/kkt.h"

namespace ncflab {

struct Problem {
  Config config;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat64;
  Dataset data;              ///< inputs [n, d] and labels [n] on `device`, in `dtype`
  FeedForward model;         ///< S members, w = δ_s·w0_s (w0: model->initial_directions())
  torch::Tensor ncf_labels;  ///< ȳ [n] on `device`

  Problem() : model(nullptr) {}
};

/// cpu, cuda or (auto) cuda when LibTorch has CUDA and a GPU is present, else cpu.
/// Asking for cuda without one is bad input (InputError at the `device` key).
torch::Device resolve_device(const Config& config);

/// Reads or draws the data set (float64, CPU), normalises it and checks the labels
/// against the loss. Throws InputError for unreadable or unsuitable data.
Dataset load_data(const Config& config);

/// The members of an ensemble that is not simply `config`'s (a batch of runs): one δ and
/// one seed per member. Empty: ensemble.seeds members with init.scale and seed + s.
struct EnsembleInit {
  std::vector<double> deltas;
  std::vector<uint64_t> seeds;
};

/// The model `config` describes for inputs of dimension `input_dim`: model.* plus the
/// ensemble size, δ, seed and dtype (and `members`, when given, instead of those).
FeedForwardOptions model_options(const Config& config, int64_t input_dim,
                                 const EnsembleInit& members = {});

/// The synthetic data set's options: data.* plus the teacher's activation (model.activation)
/// and the seed.
SyntheticDataOptions synthetic_data_options(const Config& config);

/// The KKT search's options: kkt.* seeded by the config's seed.
KktSearchOptions kkt_search_options(const Config& config);

/// The CPU threads of `threads: 0`: OMP_NUM_THREADS when the environment sets it to a
/// positive integer, otherwise every logical core.
int64_t default_threads();

/// Bytes a run of `config` needs, by what holds them (a generous estimate: copies the
/// engines, checkpoints and the flow make included).
struct MemoryEstimate {
  long double data = 0;
  long double weights = 0;
  long double activations = 0;
  long double total() const { return data + weights + activations; }
};
MemoryEstimate estimate_memory(const Config& config, int64_t n, int64_t d, int64_t members);

/// Refuses (InputError at the largest part's key, naming the estimate) a problem whose
/// estimate exceeds the memory this machine has available now.
void check_fits_in_memory(const Config& config, int64_t n, int64_t d, int64_t members);

/// Data, model and NCF labels for `config`, on its device and dtype (threads set: config's
/// `threads`, or default_threads()). The weights are drawn here, once, after
/// check_fits_in_memory.
Problem build_problem(const Config& config, const EnsembleInit& members = {});

/// A few lines a researcher reads before a run: data, model, degrees, scales.
std::string describe_problem(const Problem& problem);

}  // namespace ncflab

// Bias-free feed-forward net H(x) = W_K σ(W_{K−1} σ(… σ(W_1 x))) (SPEC §1),
// evaluating an ensemble of S independent weight sets in one batched call.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ncflab/activation.h"
#include "ncflab/random.h"

namespace ncflab {

struct FeedForwardOptions {
  FeedForwardOptions(int64_t input_dim, std::vector<int64_t> widths)
      : input_dim_(input_dim), widths_(std::move(widths)) {}

  /// Input dimension d.
  TORCH_ARG(int64_t, input_dim);
  /// Hidden widths k_1 … k_{K−1}; depth K = widths.size() + 1 ≥ 2.
  TORCH_ARG(std::vector<int64_t>, widths);
  /// Activation σ between layers.
  TORCH_ARG(PolyLeakyReLUOptions, activation) = {};
  /// Ensemble size S: independent weight sets evaluated together.
  TORCH_ARG(int64_t, members) = 1;
  /// Initial scale δ used by reset(): w = δ·w0 with ‖w0‖ = 1.
  TORCH_ARG(double, init_scale) = 1.0;
  /// Seed used by reset(); member s draws w0 from seed + s.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Element type of the weights (float64 for small-δ work).
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat64;
};

/// Degrees q_l = p^(K−l) of layers l = 1..K (W_K has degree 1). Their sum is L.
std::vector<int64_t> layer_degrees(int64_t depth, int64_t p);

/// H for explicit weights: `weights[l]` is [S, k_l, k_{l−1}], `inputs` [n, d];
/// returns [S, n]. Differentiable in the weights (and the inputs).
torch::Tensor feedforward_outputs(const std::vector<torch::Tensor>& weights,
                                  const torch::Tensor& inputs,
                                  const PolyLeakyReLUOptions& activation);

/// Splits flat weights [S, P] (or [P]) into views [S, k_l, k_{l−1}] of the given shapes.
std::vector<torch::Tensor> split_layers(const torch::Tensor& flat,
                                        const std::vector<std::vector<int64_t>>& shapes);

/// Joins per-layer tensors [S, k_l, k_{l−1}] into flat weights [S, P].
torch::Tensor join_layers(const std::vector<torch::Tensor>& layers);

/// Intermediate values of one forward pass, kept for the analytic backward pass.
struct FeedForwardCache {
  std::vector<torch::Tensor> preactivations;  ///< z_l = W_l a_{l−1}, [S, k_l, n], l = 1..K−1
  std::vector<torch::Tensor> activations;     ///< a_l = σ(z_l), [S, k_l, n], l = 1..K−1
  torch::Tensor outputs;                      ///< H, [S, n]
};

/// Forward pass keeping z_l and a_l. Same values as feedforward_outputs.
FeedForwardCache feedforward_forward(const std::vector<torch::Tensor>& weights,
                                     const torch::Tensor& inputs,
                                     const PolyLeakyReLUOptions& activation);

/// Analytic vector–Jacobian product: ∂/∂W_l of Σ_{s,i} c_{s,i}·H_s(x_i), for
/// `output_weights` c of shape [S, n] (or [n], shared by all members). Returns one
/// tensor per layer, [S, k_l, k_{l−1}]. `slopes`, when given, replaces σ'(z_l) in
/// the backward pass (one [S, k_l, n] tensor per hidden layer): the kink-aware KKT
/// residual uses it to try every slope a Clarke gradient allows.
std::vector<torch::Tensor> feedforward_vjp(const std::vector<torch::Tensor>& weights,
                                           const torch::Tensor& inputs,
                                           const PolyLeakyReLUOptions& activation,
                                           const FeedForwardCache& cache,
                                           const torch::Tensor& output_weights,
                                           const std::vector<torch::Tensor>& slopes = {});

class FeedForwardImpl : public torch::nn::Cloneable<FeedForwardImpl> {
 public:
  explicit FeedForwardImpl(const FeedForwardOptions& options_);

  /// Registers W1 … WK ([S, k_l, k_{l−1}]) and initialises them from the options.
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// H(X; w) for every member: `inputs` [n, d] → [S, n].
  torch::Tensor forward(const torch::Tensor& inputs);

  /// w = δ·w0 with w0 Gaussian over all layers, ‖w0‖ = 1 per member; member s uses
  /// seed + s, drawn on CPU in float64 so every device and dtype sees the same w0.
  void initialize(double delta, uint64_t seed);
  /// As above with one δ per member: `deltas` [S].
  void initialize(const torch::Tensor& deltas, uint64_t seed);
  /// One δ and one seed per member (a batched sweep gives runs that share a seed the
  /// same w0): `deltas` [S], `seeds` S values.
  void initialize(const torch::Tensor& deltas, const std::vector<uint64_t>& seeds);

  int64_t depth() const { return static_cast<int64_t>(weights_.size()); }
  int64_t members() const { return options.members(); }
  /// Degrees q_l of each layer, W1 first.
  std::vector<int64_t> degrees() const;
  /// Total degree L = Σ q_l: H(x; c·w) = c^L H(x; w).
  int64_t total_degree() const;
  /// Weights per member, P = Σ k_l·k_{l−1}.
  int64_t parameters_per_member() const;
  /// Shapes [k_l, k_{l−1}] of each layer (without the ensemble dimension).
  std::vector<std::vector<int64_t>> layer_shapes() const;

  /// The layer tensors W1 … WK, each [S, k_l, k_{l−1}].
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  /// All weights of each member as one vector: [S, P], layers in order W1 … WK.
  torch::Tensor flatten() const;
  /// Splits [S, P] (or [P] for one member) into per-layer views [S, k_l, k_{l−1}].
  std::vector<torch::Tensor> unflatten(const torch::Tensor& flat) const;
  /// Copies [S, P] into the weights (no autograd history).
  void load_flat(const torch::Tensor& flat);

  FeedForwardOptions options;

 private:
  std::vector<torch::Tensor> weights_;
};

TORCH_MODULE(FeedForward);

/// Draws w0 for members seed, seed+1, …: [S, P] float64 on CPU, each row of norm 1,
/// from the given random stream (training inits use `init`, the KKT search `kkt`).
torch::Tensor unit_gaussian_directions(int64_t members, int64_t parameters, uint64_t seed,
                                       RandomStream stream = RandomStream::init);
/// As above with an explicit seed per row.
torch::Tensor unit_gaussian_directions(const std::vector<uint64_t>& seeds, int64_t parameters,
                                       RandomStream stream = RandomStream::init);

}  // namespace ncflab

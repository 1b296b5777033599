// Bias-free feed-forward net H(x) = W_K σ(W_{K−1} σ(… σ(W_1 x))) (SPEC §1), and its
// single-layer kind H(x) = Σ_j σ(w_jᵀx), evaluating an ensemble of S weight sets at once.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/core/random.h"
#include "ncflab/model/activation.h"

namespace ncflab {

/// What sits on top of the hidden layers (config key model.kind).
enum class ModelKind {
  /// H = W_K σ(W_{K−1} σ(… σ(W_1 x))): a learned output row W_K [1, k_{K−1}];
  /// degrees q_l = p^(K−l).
  feedforward,
  /// H = Σ_j σ(w_jᵀx) (2402.09226, figure 1): one hidden layer W1 [k, d] and no output
  /// weights. The output row is fixed to ones and is no parameter, so L = q_1 = p.
  single_layer,
};

/// "feedforward" or "single_layer", as the config writes it.
const char* model_kind_name(ModelKind kind);

struct FeedForwardOptions {
  FeedForwardOptions(int64_t input_dim, std::vector<int64_t> widths)
      : input_dim_(input_dim), widths_(std::move(widths)) {}

  /// Input dimension d.
  TORCH_ARG(int64_t, input_dim);
  /// Hidden widths k_1 … k_{K−1}; depth K = widths.size() + 1 ≥ 2. A single-layer
  /// model has exactly one: [k].
  TORCH_ARG(std::vector<int64_t>, widths);
  /// feedforward (learned output row) or single_layer (sum of the hidden units).
  TORCH_ARG(ModelKind, kind) = ModelKind::feedforward;
  /// Activation σ between layers.
  TORCH_ARG(PolyLeakyReLUOptions, activation) = {};
  /// Ensemble size S: independent weight sets evaluated together.
  TORCH_ARG(int64_t, members) = 1;
  /// Initial scale δ used by reset(): w = δ·w0 with ‖w0‖ = 1.
  TORCH_ARG(double, init_scale) = 1.0;
  /// Seed used by reset(); member s draws w0 from seed + s.
  TORCH_ARG(uint64_t, seed) = 0;
  /// One δ per member for reset() (a batch of runs with different δ); empty: init_scale.
  TORCH_ARG(std::vector<double>, member_init_scales) = {};
  /// One seed per member for reset() (runs that share a seed share w0); empty: seed + s.
  TORCH_ARG(std::vector<uint64_t>, member_seeds) = {};
  /// Element type of the weights (float64 for small-δ work).
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat64;
};

/// One line for people: "feed-forward, d = 10, widths [20], depth K = 2, ReLU^2" or
/// "single-layer H = sum_j sigma(w_j.x), no output weights, d = 2, k = 10, ReLU^2".
std::string describe_model(const FeedForwardOptions& options);

/// Throws c10::Error unless `options` describe a model: d ≥ 1, widths ≥ 1 (exactly one for
/// single_layer), a valid activation and a total degree that fits int64.
void check_architecture(const FeedForwardOptions& options);

/// Degrees q_l = p^(K−l) of the layers l = 1..K of a feed-forward net of depth K (W_K
/// has degree 1). Their sum is L.
std::vector<int64_t> layer_degrees(int64_t depth, int64_t p);

/// Degrees of the weight tensors of the model `options` describes, W1 first: p^(K−l) for
/// a feed-forward net, [p] for a single-layer one (its fixed output row adds nothing).
std::vector<int64_t> layer_degrees(const FeedForwardOptions& options);

/// Shapes [k_l, k_{l−1}] of the model's weight tensors, W1 first (no ensemble dimension):
/// the hidden layers, then the output row [1, k_{K−1}] of a feed-forward net.
std::vector<std::vector<int64_t>> layer_shapes(const FeedForwardOptions& options);

/// The layers H is computed from: `weights` ([S, k_l, k_{l−1}], the parameters) and, for a
/// single-layer model, its fixed output row of ones [S, 1, k] that sums the hidden units.
/// Every layer but the last is followed by σ. The row of ones is a new tensor, no parameter.
std::vector<torch::Tensor> network_layers(const std::vector<torch::Tensor>& weights,
                                          const FeedForwardOptions& options);

/// H for explicit weights: `weights[l]` is [S, k_l, k_{l−1}] (the model's parameters, see
/// layer_shapes), `inputs` [n, d]; returns [S, n]. The activation and the kind come from
/// `options`, the shapes from `weights`. Differentiable in the weights (and the inputs).
torch::Tensor feedforward_outputs(const std::vector<torch::Tensor>& weights,
                                  const torch::Tensor& inputs, const FeedForwardOptions& options);

/// Splits flat weights [S, P] (or [P]) into views [S, k_l, k_{l−1}] of the given shapes.
std::vector<torch::Tensor> split_layers(const torch::Tensor& flat,
                                        const std::vector<std::vector<int64_t>>& shapes);

/// Joins per-layer tensors [S, k_l, k_{l−1}] into flat weights [S, P].
torch::Tensor join_layers(const std::vector<torch::Tensor>& layers);

/// Intermediate values of one forward pass, kept for the analytic backward pass. Hidden
/// layers are l = 1..K−1 of a feed-forward net and l = 1 of a single-layer one.
struct FeedForwardCache {
  std::vector<torch::Tensor> preactivations;  ///< z_l = W_l a_{l−1}, [S, k_l, n], hidden l
  std::vector<torch::Tensor> activations;     ///< a_l = σ(z_l), [S, k_l, n], hidden l
  torch::Tensor outputs;                      ///< H, [S, n]
};

/// Forward pass keeping z_l and a_l. Same values as feedforward_outputs.
FeedForwardCache feedforward_forward(const std::vector<torch::Tensor>& weights,
                                     const torch::Tensor& inputs,
                                     const FeedForwardOptions& options);

/// Analytic vector–Jacobian product: ∂/∂W_l of Σ_{s,i} c_{s,i}·H_s(x_i), for
/// `output_weights` c of shape [S, n] (or [n], shared by all members). Returns one
/// tensor per weight tensor, [S, k_l, k_{l−1}] (none for a fixed output row). `slopes`,
/// when given, replaces σ'(z_l) in the backward pass (one [S, k_l, n] tensor per hidden
/// layer): the kink-aware KKT residual uses it to try every slope a Clarke gradient allows.
std::vector<torch::Tensor> feedforward_vjp(const std::vector<torch::Tensor>& weights,
                                           const torch::Tensor& inputs,
                                           const FeedForwardOptions& options,
                                           const FeedForwardCache& cache,
                                           const torch::Tensor& output_weights,
                                           const std::vector<torch::Tensor>& slopes = {});

class FeedForwardImpl : public torch::nn::Cloneable<FeedForwardImpl> {
 public:
  explicit FeedForwardImpl(const FeedForwardOptions& options_);

  /// Registers W1 … WK ([S, k_l, k_{l−1}]; W1 alone for a single-layer model) and
  /// initialises them from the options: the one draw of w0 (member_init_scales and
  /// member_seeds when given, else init_scale and seed + s).
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

  /// The unit directions w0 [S, P] (float64, CPU) the last initialisation drew, exactly:
  /// the weights are δ_s·w0_s, and the NCF flow of a run starts at w0_s.
  const torch::Tensor& initial_directions() const { return initial_directions_; }

  /// Weight tensors: K for a feed-forward net, 1 for a single-layer model.
  int64_t depth() const { return static_cast<int64_t>(weights_.size()); }
  /// Layers followed by σ: K − 1 for a feed-forward net, 1 for a single-layer model.
  int64_t hidden_layers() const { return static_cast<int64_t>(options.widths().size()); }
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
  torch::Tensor initial_directions_;
};

TORCH_MODULE(FeedForward);

/// Draws w0 for members seed, seed+1, …: [S, P] float64 on CPU, each row of norm 1,
/// from the given random stream (training inits use `init`, the KKT search `kkt`).
torch::Tensor unit_gaussian_directions(int64_t members, int64_t parameters, uint64_t seed,
                                       RandomStream stream = RandomStream::init);
/// As above with an explicit seed per row.
torch::Tensor unit_gaussian_directions(const std::vector<uint64_t>& seeds, int64_t parameters,
                                       RandomStream stream = RandomStream::init);

/// "W1", "W2", … for layer index 0, 1, …: the parameter names and the keys of every
/// weights file.
std::string layer_name(size_t layer);

/// {"W1": layers[0], …}: per-layer tensors under their layer names.
std::vector<std::pair<std::string, torch::Tensor>> named_layers(
    const std::vector<torch::Tensor>& layers);

}  // namespace ncflab

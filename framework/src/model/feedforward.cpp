// The ensemble feed-forward net (and its single-layer kind): layer shapes, degrees,
// batched evaluation, flattening and the small initialisation w = δ·w0.
#include "ncflab/model/feedforward.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

#include "ncflab/core/random.h"

namespace ncflab {

const char* model_kind_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::feedforward:
      return "feedforward";
    case ModelKind::single_layer:
      return "single_layer";
  }
  return "unknown";
}

std::string describe_model(const FeedForwardOptions& options) {
  const auto activation = describe_activation(options.activation());
  if (options.kind() == ModelKind::single_layer) {
    return fmt::format("single-layer H = sum_j sigma(w_j.x), no output weights, d = {}, k = {}, {}",
                       options.input_dim(), fmt::join(options.widths(), ", "), activation);
  }
  return fmt::format("feed-forward, d = {}, widths [{}], depth K = {}, {}", options.input_dim(),
                     fmt::join(options.widths(), ", "), options.widths().size() + 1, activation);
}

std::vector<int64_t> layer_degrees(int64_t depth, int64_t p) {
  TORCH_CHECK(depth >= 2, "layer_degrees – depth must be >= 2 – got ", depth);
  std::vector<int64_t> degrees(static_cast<size_t>(depth));
  int64_t q = 1;  // W_K enters linearly; each σ below it multiplies the degree by p.
  for (int64_t l = depth - 1; l >= 0; --l) {
    degrees[static_cast<size_t>(l)] = q;
    if (l > 0) {
      TORCH_CHECK(q <= std::numeric_limits<int64_t>::max() / p,
                  "layer_degrees – degree overflows int64 for depth ", depth, " and p ", p);
      q *= p;
    }
  }
  return degrees;
}

std::vector<int64_t> layer_degrees(const FeedForwardOptions& options) {
  auto degrees =
      layer_degrees(static_cast<int64_t>(options.widths().size()) + 1, options.activation().p());
  // The single-layer model is the depth-2 net with its output row fixed: that row is no
  // weight, and W1 keeps its degree p.
  if (options.kind() == ModelKind::single_layer) degrees.pop_back();
  return degrees;
}

std::vector<std::vector<int64_t>> layer_shapes(const FeedForwardOptions& options) {
  std::vector<std::vector<int64_t>> shapes;
  int64_t fan_in = options.input_dim();
  for (int64_t width : options.widths()) {
    shapes.push_back({width, fan_in});
    fan_in = width;
  }
  if (options.kind() == ModelKind::feedforward) shapes.push_back({1, fan_in});
  return shapes;
}

std::vector<torch::Tensor> network_layers(const std::vector<torch::Tensor>& weights,
                                          const FeedForwardOptions& options) {
  TORCH_CHECK(!weights.empty(), "network_layers – no weights given");
  if (options.kind() == ModelKind::feedforward) return weights;
  const auto& last = weights.back();  // [S, k, k_prev]: H sums its k units
  auto layers = weights;
  layers.push_back(
      torch::ones({last.size(0), 1, last.size(1)}, last.options().requires_grad(false)));
  return layers;
}

torch::Tensor feedforward_outputs(const std::vector<torch::Tensor>& weights,
                                  const torch::Tensor& inputs, const FeedForwardOptions& options) {
  const auto layers = network_layers(weights, options);
  TORCH_CHECK(layers.size() >= 2, "feedforward_outputs – need >= 2 layers – got ", layers.size());
  TORCH_CHECK(inputs.dim() == 2, "feedforward_outputs – inputs must be [n, d] – got ",
              inputs.sizes());
  // [S, k_1, d] @ [d, n] → preactivations [S, k_1, n]; columns are samples throughout.
  torch::Tensor hidden = torch::matmul(layers.front(), inputs.t());
  for (size_t l = 1; l < layers.size(); ++l) {
    hidden = torch::matmul(layers[l], poly_leaky_relu(hidden, options.activation()));
  }
  return hidden.squeeze(1);  // the output row is [S, 1, k_{K−1}]: [S, 1, n] → [S, n]
}

std::vector<torch::Tensor> split_layers(const torch::Tensor& flat,
                                        const std::vector<std::vector<int64_t>>& shapes) {
  const torch::Tensor rows = flat.dim() == 1 ? flat.unsqueeze(0) : flat;
  int64_t parameters = 0;
  for (const auto& shape : shapes) parameters += shape[0] * shape[1];
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == parameters, "split_layers – expected [S, ",
              parameters, "] – got ", flat.sizes());
  std::vector<torch::Tensor> layers;
  int64_t offset = 0;
  for (const auto& shape : shapes) {
    const int64_t size = shape[0] * shape[1];
    layers.push_back(rows.narrow(1, offset, size).reshape({rows.size(0), shape[0], shape[1]}));
    offset += size;
  }
  return layers;
}

torch::Tensor join_layers(const std::vector<torch::Tensor>& layers) {
  std::vector<torch::Tensor> pieces;
  for (const auto& w : layers) pieces.push_back(w.reshape({w.size(0), -1}));
  return torch::cat(pieces, 1);
}

FeedForwardCache feedforward_forward(const std::vector<torch::Tensor>& weights,
                                     const torch::Tensor& inputs,
                                     const FeedForwardOptions& options) {
  const auto layers = network_layers(weights, options);
  TORCH_CHECK(layers.size() >= 2, "feedforward_forward – need >= 2 layers – got ", layers.size());
  FeedForwardCache cache;
  torch::Tensor hidden = torch::matmul(layers.front(), inputs.t());
  for (size_t l = 1; l < layers.size(); ++l) {
    cache.preactivations.push_back(hidden);
    cache.activations.push_back(poly_leaky_relu(hidden, options.activation()));
    hidden = torch::matmul(layers[l], cache.activations.back());
  }
  cache.outputs = hidden.squeeze(1);
  return cache;
}

std::vector<torch::Tensor> feedforward_vjp(const std::vector<torch::Tensor>& weights,
                                           const torch::Tensor& inputs,
                                           const FeedForwardOptions& options,
                                           const FeedForwardCache& cache,
                                           const torch::Tensor& output_weights,
                                           const std::vector<torch::Tensor>& slopes) {
  const auto layers = network_layers(weights, options);
  const size_t depth = layers.size();
  TORCH_CHECK(slopes.empty() || slopes.size() + 1 == depth,
              "feedforward_vjp – need one slope tensor per hidden layer – got ", slopes.size());
  std::vector<torch::Tensor> grads(weights.size());
  // δ_K = c as [S, 1, n]; grad W_l = δ_l a_{l−1}ᵀ; δ_{l−1} = (W_lᵀ δ_l) ⊙ σ'(z_{l−1}).
  torch::Tensor delta = output_weights.dim() == 1
                            ? output_weights.expand({layers.back().size(0), -1}).unsqueeze(1)
                            : output_weights.unsqueeze(1);
  for (size_t l = depth - 1; l >= 1; --l) {
    // A single-layer model's output row is fixed: no gradient for it.
    if (l < weights.size()) {
      grads[l] = torch::matmul(delta, cache.activations[l - 1].transpose(1, 2));
    }
    const torch::Tensor slope =
        slopes.empty()
            ? poly_leaky_relu_derivative(cache.preactivations[l - 1], options.activation())
            : slopes[l - 1];
    delta = torch::matmul(layers[l].transpose(1, 2), delta) * slope;
  }
  grads[0] = torch::matmul(delta, inputs);
  return grads;
}

torch::Tensor unit_gaussian_directions(int64_t members, int64_t parameters, uint64_t seed,
                                       RandomStream stream) {
  std::vector<uint64_t> seeds;
  for (int64_t s = 0; s < members; ++s) seeds.push_back(seed + static_cast<uint64_t>(s));
  return unit_gaussian_directions(seeds, parameters, stream);
}

torch::Tensor unit_gaussian_directions(const std::vector<uint64_t>& seeds, int64_t parameters,
                                       RandomStream stream) {
  const auto members = static_cast<int64_t>(seeds.size());
  auto directions = torch::empty({members, parameters}, torch::kFloat64);
  for (int64_t s = 0; s < members; ++s) {
    auto generator = make_generator(seeds[static_cast<size_t>(s)], stream);
    auto w0 = at::normal(0.0, 1.0, {parameters}, generator, torch::TensorOptions(torch::kFloat64));
    directions[s] = w0 / w0.norm();
  }
  return directions;
}

FeedForwardImpl::FeedForwardImpl(const FeedForwardOptions& options_) : options(options_) {
  reset();
}

void check_architecture(const FeedForwardOptions& options) {
  TORCH_CHECK(options.input_dim() >= 1, "FeedForward – input_dim must be >= 1 – got ",
              options.input_dim());
  TORCH_CHECK(!options.widths().empty(),
              "FeedForward – need at least one hidden width (depth K >= 2)");
  for (int64_t width : options.widths()) {
    TORCH_CHECK(width >= 1, "FeedForward – hidden widths must be >= 1 – got ", width);
  }
  TORCH_CHECK(options.kind() != ModelKind::single_layer || options.widths().size() == 1,
              "FeedForward – a single-layer model has exactly one hidden width [k] – got ",
              options.widths().size(), " widths");
  check_activation_options(options.activation());
  // Fail here, not at the first forward, when L does not fit.
  layer_degrees(options);
}

void FeedForwardImpl::reset() {
  check_architecture(options);
  TORCH_CHECK(options.members() >= 1, "FeedForward – members must be >= 1 – got ",
              options.members());

  weights_.clear();
  const auto tensor_options = torch::TensorOptions(options.dtype());
  const auto shapes = layer_shapes();
  for (size_t l = 0; l < shapes.size(); ++l) {
    const auto& shape = shapes[l];
    weights_.push_back(register_parameter(
        layer_name(l), torch::zeros({options.members(), shape[0], shape[1]}, tensor_options)));
  }
  std::vector<double> deltas = options.member_init_scales();
  if (deltas.empty()) deltas.assign(static_cast<size_t>(members()), options.init_scale());
  std::vector<uint64_t> seeds = options.member_seeds();
  if (seeds.empty()) {
    for (int64_t s = 0; s < members(); ++s)
      seeds.push_back(options.seed() + static_cast<uint64_t>(s));
  }
  initialize(torch::tensor(deltas, torch::kFloat64), seeds);
}

void FeedForwardImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format(
      "ncflab::FeedForward(kind={}, d={}, widths=[{}], activation={}, members={})",
      model_kind_name(options.kind()), options.input_dim(), fmt::join(options.widths(), ", "),
      describe_activation(options.activation()), options.members());
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& inputs) {
  return feedforward_outputs(weights_, inputs, options);
}

void FeedForwardImpl::initialize(double delta, uint64_t seed) {
  initialize(torch::full({options.members()}, delta, torch::kFloat64), seed);
}

void FeedForwardImpl::initialize(const torch::Tensor& deltas, uint64_t seed) {
  std::vector<uint64_t> seeds;
  for (int64_t s = 0; s < members(); ++s) seeds.push_back(seed + static_cast<uint64_t>(s));
  initialize(deltas, seeds);
}

void FeedForwardImpl::initialize(const torch::Tensor& deltas, const std::vector<uint64_t>& seeds) {
  TORCH_CHECK(deltas.dim() == 1 && deltas.size(0) == members(),
              "FeedForward::initialize – deltas must be [S] with S = ", members(), " – got ",
              deltas.sizes());
  TORCH_CHECK(static_cast<int64_t>(seeds.size()) == members(),
              "FeedForward::initialize – need one seed per member (", members(), ") – got ",
              seeds.size());
  TORCH_CHECK((deltas > 0).all().item<bool>(), "FeedForward::initialize – deltas must be > 0");
  initial_directions_ = unit_gaussian_directions(seeds, parameters_per_member());
  load_flat(initial_directions_ * deltas.to(torch::kCPU, torch::kFloat64).unsqueeze(1));
}

std::vector<int64_t> FeedForwardImpl::degrees() const { return layer_degrees(options); }

int64_t FeedForwardImpl::total_degree() const {
  int64_t total = 0;
  for (int64_t q : degrees()) total += q;
  return total;
}

std::vector<std::vector<int64_t>> FeedForwardImpl::layer_shapes() const {
  return ncflab::layer_shapes(options);
}

int64_t FeedForwardImpl::parameters_per_member() const {
  int64_t count = 0;
  for (const auto& shape : layer_shapes()) count += shape[0] * shape[1];
  return count;
}

torch::Tensor FeedForwardImpl::flatten() const { return join_layers(weights_); }

std::vector<torch::Tensor> FeedForwardImpl::unflatten(const torch::Tensor& flat) const {
  return split_layers(flat, layer_shapes());
}

void FeedForwardImpl::load_flat(const torch::Tensor& flat) {
  TORCH_CHECK(flat.dim() == 2 && flat.size(0) == members(), "FeedForward::load_flat – expected [",
              members(), ", ", parameters_per_member(), "] – got ", flat.sizes());
  torch::NoGradGuard no_grad;
  auto layers = unflatten(flat);
  for (size_t l = 0; l < weights_.size(); ++l) weights_[l].copy_(layers[l]);
}

std::string layer_name(size_t layer) { return fmt::format("W{}", layer + 1); }

std::vector<std::pair<std::string, torch::Tensor>> named_layers(
    const std::vector<torch::Tensor>& layers) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (size_t l = 0; l < layers.size(); ++l) named.emplace_back(layer_name(l), layers[l]);
  return named;
}

}  // namespace ncflab

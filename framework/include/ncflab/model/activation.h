// Polynomial Leaky ReLU σ(z) = max(z,0)^p − α·max(−z,0)^p (SPEC §1), the
// p-homogeneous activation of every ncflab model, with an exact derivative.
#pragma once

#include <torch/torch.h>

#include <string>

namespace ncflab {

struct PolyLeakyReLUOptions {
  /// Leak α ∈ [−1, 1]: 0 is ReLU^p, 1 the odd power sgn(z)|z|^p, −1 the even power |z|^p.
  TORCH_ARG(double, alpha) = 0.0;
  /// Integer power p ≥ 1; σ is p-homogeneous. p = 1 is Leaky ReLU max(z, αz).
  TORCH_ARG(int64_t, p) = 1;
};

/// Throws c10::Error unless α ∈ [−1, 1] and p ≥ 1.
void check_activation_options(const PolyLeakyReLUOptions& options);

/// Whether σ has a kink: p = 1 with α ≠ 1 (α = 1 is the identity).
inline bool has_kinks(const PolyLeakyReLUOptions& options) {
  return options.p() == 1 && options.alpha() != 1.0;
}

/// σ(z), elementwise, differentiable through a custom autograd function whose
/// backward is σ'(z) (itself differentiable, so double backward works).
torch::Tensor poly_leaky_relu(const torch::Tensor& z, const PolyLeakyReLUOptions& options);

/// σ'(z) = p·z^(p−1) for z > 0 and α·p·(−z)^(p−1) for z < 0. At z = 0 it is 0 for
/// p ≥ 2; for p = 1 (a kink) we take the left slope α, as PyTorch's leaky_relu
/// and relu backward do, so gradients agree with a PyTorch baseline bit for bit.
torch::Tensor poly_leaky_relu_derivative(const torch::Tensor& z,
                                         const PolyLeakyReLUOptions& options);

/// A short human name: "ReLU", "Leaky ReLU (α=0.2)", "ReLU^2", "polynomial Leaky ReLU (α=0.2,
/// p=2)".
std::string describe_activation(const PolyLeakyReLUOptions& options);

/// The activation as a torch::nn module (it holds no parameters).
class PolyLeakyReLUImpl : public torch::nn::Cloneable<PolyLeakyReLUImpl> {
 public:
  explicit PolyLeakyReLUImpl(const PolyLeakyReLUOptions& options_ = {});

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// σ(z), same shape as z.
  torch::Tensor forward(const torch::Tensor& z);

  /// Degree of homogeneity: σ(c·z) = c^p σ(z) for c > 0.
  int64_t degree() const { return options.p(); }

  PolyLeakyReLUOptions options;
};

TORCH_MODULE(PolyLeakyReLU);

}  // namespace ncflab

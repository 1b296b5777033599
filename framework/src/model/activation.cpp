// Polynomial Leaky ReLU: value, exact derivative and the autograd function tying them.
// Written as σ(z) = c(z)·z^p with c = 1 for z > 0 and c = −α(−1)^p otherwise,
// which needs a single pow and no branches per element.
#include "ncflab/model/activation.h"

#include <fmt/format.h>

namespace ncflab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Coefficient of z^p on the negative side: −α·max(−z,0)^p = −α(−1)^p·z^p for z < 0.
double negative_side_coefficient(const PolyLeakyReLUOptions& options) {
  return options.p() % 2 == 0 ? -options.alpha() : options.alpha();
}

// c(z) = 1 for z > 0, c_neg otherwise, as a tensor of z's dtype.
torch::Tensor side_coefficient(const torch::Tensor& z, double negative_coefficient) {
  return (z > 0).to(z.scalar_type()) * (1.0 - negative_coefficient) + negative_coefficient;
}

torch::Tensor value(const torch::Tensor& z, const PolyLeakyReLUOptions& options) {
  if (options.p() == 1) return torch::leaky_relu(z, options.alpha());
  return side_coefficient(z, negative_side_coefficient(options)) * z.pow(options.p());
}

struct PolyLeakyReLUFunction : torch::autograd::Function<PolyLeakyReLUFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& z, double alpha,
                               int64_t p) {
    ctx->save_for_backward({z});
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["p"] = p;
    return value(z, PolyLeakyReLUOptions().alpha(alpha).p(p));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const torch::Tensor z = ctx->get_saved_variables()[0];
    const auto options = PolyLeakyReLUOptions()
                             .alpha(ctx->saved_data["alpha"].toDouble())
                             .p(ctx->saved_data["p"].toInt());
    return {grad_outputs[0] * poly_leaky_relu_derivative(z, options), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

void check_activation_options(const PolyLeakyReLUOptions& options) {
  TORCH_CHECK(options.alpha() >= -1.0 && options.alpha() <= 1.0,
              "PolyLeakyReLU – alpha must lie in [-1, 1] – got ", options.alpha());
  TORCH_CHECK(options.p() >= 1, "PolyLeakyReLU – p must be an integer >= 1 – got ", options.p());
}

torch::Tensor poly_leaky_relu(const torch::Tensor& z, const PolyLeakyReLUOptions& options) {
  return PolyLeakyReLUFunction::apply(z, options.alpha(), options.p());
}

torch::Tensor poly_leaky_relu_derivative(const torch::Tensor& z,
                                         const PolyLeakyReLUOptions& options) {
  const double c_neg = negative_side_coefficient(options);
  if (options.p() == 1) {
    // Slope 1 for z > 0, α for z ≤ 0 (the value at the kink documented in the header).
    return side_coefficient(z, options.alpha());
  }
  return side_coefficient(z, c_neg) * (static_cast<double>(options.p()) * z.pow(options.p() - 1));
}

std::string describe_activation(const PolyLeakyReLUOptions& options) {
  const double alpha = options.alpha();
  const int64_t p = options.p();
  if (p == 1) return alpha == 0.0 ? "ReLU" : fmt::format("Leaky ReLU (alpha={:g})", alpha);
  if (alpha == 0.0) return fmt::format("ReLU^{}", p);
  if (alpha == 1.0) return fmt::format("odd power sgn(z)|z|^{}", p);
  if (alpha == -1.0) return fmt::format("even power |z|^{}", p);
  return fmt::format("polynomial Leaky ReLU (alpha={:g}, p={})", alpha, p);
}

PolyLeakyReLUImpl::PolyLeakyReLUImpl(const PolyLeakyReLUOptions& options_) : options(options_) {
  reset();
}

void PolyLeakyReLUImpl::reset() { check_activation_options(options); }

void PolyLeakyReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "ncflab::PolyLeakyReLU(alpha=" << options.alpha() << ", p=" << options.p() << ")";
}

torch::Tensor PolyLeakyReLUImpl::forward(const torch::Tensor& z) {
  return poly_leaky_relu(z, options);
}

}  // namespace ncflab

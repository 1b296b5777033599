// The fused engine's BLAS path for wide nets (fused_wide.h).
#include "fused_wide.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "fused_kernel_terms.h"
#include "ncflab/train/engine.h"

namespace ncflab::fused {
namespace {

template <typename T>
torch::Dtype dtype_of() {
  return std::is_same_v<T, double> ? torch::kFloat64 : torch::kFloat32;
}

template <typename T>
torch::Tensor wrap(const T* data, std::initializer_list<int64_t> sizes) {
  return torch::from_blob(const_cast<T*>(data), sizes, torch::TensorOptions(dtype_of<T>()));
}

}  // namespace
}  // namespace ncflab::fused

namespace ncflab {

// From here on, a layer product is a million multiply-adds or more: the BLAS's GEMM on every
// core beats the fused loops, and its few ATen calls cost nothing next to it.
bool fused_engine_uses_blas(int64_t samples, int64_t parameters) {
  return samples * parameters >= (int64_t{1} << 20);
}

}  // namespace ncflab

namespace ncflab::fused {

template <typename T>
bool is_wide(const Net<T>& net) {
  int64_t parameters = 0;
  for (size_t l = 0; l < net.layers; ++l) parameters += net.shapes[2 * l] * net.shapes[2 * l + 1];
  return fused_engine_uses_blas(net.samples, parameters);
}

template <typename T>
WideMemberStep<T>::WideMemberStep(const Net<T>& net)
    : samples_(net.samples),
      hidden_(net.hidden),
      learned_output_(net.learned_output),
      logistic_(net.logistic),
      p_(net.p),
      negative_(static_cast<T>(net.negative_coefficient)) {
  for (size_t l = 0; l < net.layers; ++l)
    shapes_.emplace_back(net.shapes[2 * l], net.shapes[2 * l + 1]);
  inputs_ = wrap(net.inputs, {samples_, shapes_.front().second});
  labels_ = wrap(net.labels, {samples_});
  const auto options = torch::TensorOptions(dtype_of<T>());
  for (size_t l = 0; l < hidden_; ++l) {
    for (auto* buffers : {&z_, &a_, &slope_, &delta_}) {
      buffers->push_back(torch::empty({shapes_[l].first, samples_}, options));
    }
  }
  output_ = torch::empty({1, samples_}, options);
  residual_ = torch::empty({1, samples_}, options);
}

// σ and σ' as the fused kernels compute them: c(z)·z^p and c(z)·p·z^(p−1), c = 1 above 0.
template <typename T>
void WideMemberStep<T>::activate(const torch::Tensor& z, torch::Tensor& value,
                                 torch::Tensor& slope) const {
  const T* __restrict zs = z.data_ptr<T>();
  T* __restrict values = value.data_ptr<T>();
  T* __restrict slopes = slope.data_ptr<T>();
  const T negative = negative_;
  const int64_t size = z.numel();
  // Branch-free loops (the sign of z is a coin toss): with -fno-trapping-math (CMakeLists)
  // the choice of c(z) becomes a vector blend.
  if (p_ == 1) {
    for (int64_t e = 0; e < size; ++e) {
      const T side = zs[e] > T(0) ? T(1) : negative;
      values[e] = side * zs[e];
      slopes[e] = side;
    }
    return;
  }
  const T degree = static_cast<T>(p_);
  for (int64_t e = 0; e < size; ++e) {
    const T side = zs[e] > T(0) ? T(1) : negative;
    T power = zs[e];
    for (int64_t i = 2; i < p_; ++i) power *= zs[e];
    values[e] = side * (power * zs[e]);
    slopes[e] = side * (degree * power);
  }
}

template <typename T>
double WideMemberStep<T>::evaluate(const Net<T>& net, int64_t s) {
  const int64_t n = samples_;
  std::vector<torch::Tensor> weights;
  std::vector<torch::Tensor> gradients;
  for (size_t l = 0; l < shapes_.size(); ++l) {
    const auto [rows, cols] = shapes_[l];
    weights.push_back(wrap(net.weights[l] + s * rows * cols, {rows, cols}));
    gradients.push_back(wrap(net.gradients[l] + s * rows * cols, {rows, cols}));
  }
  // Forward: z_l = W_l a_{l−1} (a_0 = Xᵀ), a_l = σ(z_l).
  for (size_t l = 0; l < hidden_; ++l) {
    at::mm_out(z_[l], weights[l], l == 0 ? inputs_.t() : a_[l - 1]);
    activate(z_[l], a_[l], slope_[l]);
  }
  const auto& top = a_[hidden_ - 1];
  const int64_t top_units = shapes_[hidden_ - 1].first;
  T* h = output_.data_ptr<T>();
  if (learned_output_) {
    at::mm_out(output_, weights[hidden_], top);
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = 0;
    for (int64_t j = 0; j < top_units; ++j) {
      const T* a = top.data_ptr<T>() + j * n;
      for (int64_t i = 0; i < n; ++i) h[i] += a[i];
    }
  }
  // The loss, and ∂ℓ/∂H, by the fused kernels' own terms.
  double loss = 0;
  T* r = residual_.data_ptr<T>();
  const T* y = labels_.data_ptr<T>();
  for (int64_t i = 0; i < n; ++i) add_loss_term(logistic_, h[i], y[i], loss, r[i]);
  // Backward: ∇W_K = r a_{K−1}ᵀ, δ_{K−1} = (W_Kᵀ r) ⊙ σ'; ∇W_l = δ_l a_{l−1}ᵀ,
  // δ_{l−1} = (W_lᵀ δ_l) ⊙ σ'(z_{l−1}).
  if (learned_output_) at::mm_out(gradients[hidden_], residual_, top.t());
  {
    const T* w = learned_output_ ? weights[hidden_].data_ptr<T>() : nullptr;
    T* d = delta_[hidden_ - 1].data_ptr<T>();
    const T* slope = slope_[hidden_ - 1].data_ptr<T>();
    for (int64_t j = 0; j < top_units; ++j) {
      const T weight = w ? w[j] : T(1);
      for (int64_t i = 0; i < n; ++i) d[j * n + i] = r[i] * weight * slope[j * n + i];
    }
  }
  for (size_t l = hidden_; l-- > 0;) {
    at::mm_out(gradients[l], delta_[l], l == 0 ? inputs_ : a_[l - 1].t());
    if (l == 0) break;
    at::mm_out(delta_[l - 1], weights[l].t(), delta_[l]);
    T* d = delta_[l - 1].data_ptr<T>();
    const T* slope = slope_[l - 1].data_ptr<T>();
    for (int64_t e = 0; e < delta_[l - 1].numel(); ++e) d[e] *= slope[e];
  }
  return loss;
}

template bool is_wide(const Net<double>& net);
template bool is_wide(const Net<float>& net);
template class WideMemberStep<double>;
template class WideMemberStep<float>;

}  // namespace ncflab::fused

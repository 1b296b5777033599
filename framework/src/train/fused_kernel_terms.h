// The fused kernels' shared terms (internal; see fused_kernels_impl.h, which includes this
// once per instruction set): the shapes, the loss terms and σ on vectors, common to the
// single-member and the lanes layouts so that both round alike.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "fused_kernels.h"
#include "fused_simd.h"

namespace ncflab::fused {
namespace {

struct Shape {
  int64_t rows;
  int64_t cols;
};

// The loss terms, shared by every path so that they round alike. Square: ½e², ∂ℓ/∂H = e.
// Logistic: softplus(m) with m = −y·H, as torch::softplus (threshold 20); ∂ℓ/∂H =
// −y·sigmoid(m). Returns sample's term of ℓ; ∂ℓ/∂H into `residual`.
template <typename T>
inline double loss_term(bool logistic, T h, T y, T& residual) {
  if (!logistic) {
    const T e = h - y;
    residual = e;
    return 0.5 * static_cast<double>(e) * static_cast<double>(e);
  }
  const T m = -y * h;
  residual = -y * (T(1) / (T(1) + std::exp(-m)));
  return m > T(20) ? static_cast<double>(m) : std::log1p(std::exp(static_cast<double>(m)));
}

// ℓ's sum in sample order: total += term (units including this compile without contraction,
// so a term added later, as the wide path does, rounds the same).
template <typename T>
inline void add_loss_term(bool logistic, T h, T y, double& total, T& residual) {
  total += loss_term(logistic, h, y, residual);
}

/// What both layouts share for element type T and vector type V (lanes = sizeof(V)/sizeof(T)).
template <typename T, typename V>
class KernelTerms {
 public:
  static constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(T));
  using Mask = decltype(V{} > V{});

  explicit KernelTerms(const Net<T>& net)
      : samples_(net.samples),
        hidden_(net.hidden),
        learned_output_(net.learned_output),
        p_(net.p),
        negative_(static_cast<T>(net.negative_coefficient)) {
    for (size_t l = 0; l < net.layers; ++l)
      shapes_.push_back({net.shapes[2 * l], net.shapes[2 * l + 1]});
  }

  // x in every lane (one broadcast; a loop over the lanes compiles to one masked move each).
  static V splat(T x) { return splat(x, std::make_index_sequence<kLanes>()); }
  template <size_t... Lane>
  static V splat(T x, std::index_sequence<Lane...>) {
    return V{((void)Lane, x)...};
  }

  // A vector from / to kLanes consecutive elements, any alignment.
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }

  static V select(Mask mask, V yes, V no) { return (V)(((Mask)yes & mask) | ((Mask)no & ~mask)); }

  // σ(z) and σ'(z) for integer p ≥ 1 (SPEC §1); at z = 0 the slope is α for p = 1, the left
  // slope, as in activation.cpp and PyTorch's leaky_relu backward.
  void activate(V z, V& value, V& slope) const {
    const V side = select(z > V{}, splat(T(1)), splat(negative_));
    if (p_ == 1) {
      value = side * z;
      slope = side;
      return;
    }
    V power = z;
    for (int64_t i = 2; i < p_; ++i) power *= z;
    value = side * (power * z);
    slope = side * (splat(static_cast<T>(p_)) * power);
  }

  int64_t samples_;
  size_t hidden_;
  bool learned_output_;
  int64_t p_;
  T negative_;
  std::vector<Shape> shapes_;
};

}  // namespace
}  // namespace ncflab::fused

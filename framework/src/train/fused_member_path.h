// The fused kernels' single-member layout (internal; included once per instruction set by
// fused_kernels_impl.h): activations sample-major [n, k] with rows padded to whole vectors,
// the sums held in vectors of units.
#pragma once

#include <vector>

#include "fused_kernel_terms.h"

namespace ncflab::fused {
namespace {

template <typename T, typename V>
class MemberPath : private KernelTerms<T, V> {
  using Terms = KernelTerms<T, V>;
  using Terms::activate;
  using Terms::hidden_;
  using Terms::kLanes;
  using Terms::learned_output_;
  using Terms::load;
  using Terms::samples_;
  using Terms::shapes_;
  using Terms::splat;
  using Terms::store;

 public:
  explicit MemberPath(const Net<T>& net) : Terms(net) {
    const auto n = static_cast<size_t>(samples_);
    size_t widest = 0;
    for (const auto& shape : shapes_) {
      // Each layer its own padded copies, so their padding stays zero.
      const auto padded = static_cast<size_t>(stride(shape.rows) * stride(shape.cols));
      transposed_.emplace_back(padded);
      padded_weights_.emplace_back(padded);
      const auto width = static_cast<size_t>(
          stride(shape.rows) > stride(shape.cols) ? stride(shape.rows) : stride(shape.cols));
      widest = width > widest ? width : widest;
    }
    for (size_t l = 0; l < hidden_; ++l) {
      const auto padded = n * static_cast<size_t>(stride(shapes_[l].rows));
      activations_.emplace_back(padded);
      slopes_.emplace_back(padded);
      deltas_.emplace_back(padded);
    }
    gradient_row_ = Buffer<T>(widest);
    residual_ = Buffer<T>(n);
    const auto d = shapes_.front().cols;
    padded_inputs_ = Buffer<T>(n * static_cast<size_t>(stride(d)));
    for (size_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < d; ++c)
        padded_inputs_.data()[i * static_cast<size_t>(stride(d)) + static_cast<size_t>(c)] =
            net.inputs[i * static_cast<size_t>(d) + static_cast<size_t>(c)];
    }
    padded_output_ = Buffer<T>(static_cast<size_t>(stride(shapes_[hidden_ - 1].rows)));
  }

  // Rows of activations, slopes and deltas are padded to whole vectors (stride(k) ≥ k), as
  // are the weights' rows in their copies: padded units have zero weights, so they add
  // nothing anywhere; only real entries are ever written back.

  static int64_t blocks(int64_t k) { return (k + kLanes - 1) / kLanes; }
  static int64_t stride(int64_t k) { return blocks(k) * kLanes; }

  double evaluate_member(const Net<T>& net, int64_t s) {
    const int64_t n = samples_;
    // Forward: z_l[i, j] = Σ_c a_{l−1}[i, c]·W_l[j, c], c ascending from 0, a vector of units
    // at a time; then a_l = σ(z_l) and σ'(z_l).
    const T* previous = padded_inputs_.data();
    for (size_t l = 0; l < hidden_; ++l) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const int64_t in_stride = stride(cols);
      const int64_t out_stride = stride(rows);
      const T* w = net.weights[l] + s * rows * cols;
      T* wt = transposed_[l].data();  // [cols, stride(rows)]: W_lᵀ, padded with zeros
      for (int64_t c = 0; c < cols; ++c) {
        for (int64_t j = 0; j < rows; ++j) wt[c * out_stride + j] = w[j * cols + c];
      }
      T* a = activations_[l].data();
      T* slope = slopes_[l].data();
      for (int64_t i = 0; i < n; ++i) {
        const T* in = previous + i * in_stride;
        int64_t jb = 0;
        for (; jb + 2 <= blocks(rows); jb += 2) {
          V z0 = {}, z1 = {};
          for (int64_t c = 0; c < cols; ++c) {
            const V x = splat(in[c]);
            z0 = vector_madd<T>(x, load(wt + c * out_stride + jb * kLanes), z0);
            z1 = vector_madd<T>(x, load(wt + c * out_stride + (jb + 1) * kLanes), z1);
          }
          activate_into(z0, a + i * out_stride + jb * kLanes, slope + i * out_stride + jb * kLanes);
          activate_into(z1, a + i * out_stride + (jb + 1) * kLanes,
                        slope + i * out_stride + (jb + 1) * kLanes);
        }
        for (; jb < blocks(rows); ++jb) {
          V z = {};
          for (int64_t c = 0; c < cols; ++c)
            z = vector_madd<T>(splat(in[c]), load(wt + c * out_stride + jb * kLanes), z);
          activate_into(z, a + i * out_stride + jb * kLanes, slope + i * out_stride + jb * kLanes);
        }
      }
      previous = a;
    }
    // Output H_i = W_K·a_{K−1}[i, :] (W_K = ones for a single-layer model), loss, residual.
    const size_t output = shapes_.size() - 1;
    const int64_t last_width = shapes_[hidden_ - 1].rows;
    const int64_t last_stride = stride(last_width);
    T* output_weights = padded_output_.data();  // [stride(last_width)], zero-padded
    for (int64_t j = 0; j < last_width; ++j)
      output_weights[j] = learned_output_ ? net.weights[output][s * last_width + j] : T(1);
    T* r = residual_.data();
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* a = previous + i * last_stride;
      T h = 0;
      for (int64_t j = 0; j < last_width; ++j) h = madd(output_weights[j], a[j], h);
      add_loss_term(net.logistic, h, net.labels[i], loss, r[i]);
    }
    // ∇W_K[j] = Σ_i r_i·a_{K−1}[i, j] (i ascending); δ_{K−1}[i, j] = r_i·W_K[j]·σ'(z_{K−1}[i, j]).
    T* delta = deltas_[hidden_ - 1].data();
    const T* last_slope = slopes_[hidden_ - 1].data();
    for (int64_t jb = 0; jb < blocks(last_width); ++jb) {
      const V wk = load(output_weights + jb * kLanes);
      V gradient = {};
      for (int64_t i = 0; i < n; ++i) {
        const V ri = splat(r[i]);
        const int64_t at = i * last_stride + jb * kLanes;
        gradient = vector_madd<T>(ri, load(previous + at), gradient);
        store(delta + at, ri * wk * load(last_slope + at));
      }
      if (learned_output_) store(gradient_row_.data() + jb * kLanes, gradient);
    }
    if (learned_output_) {
      T* grad_last = net.gradients[output] + s * last_width;
      for (int64_t j = 0; j < last_width; ++j) grad_last[j] = gradient_row_.data()[j];
    }
    // Hidden layers, last to first: ∇W_l[j, c] = Σ_i δ_l[i, j]·a_{l−1}[i, c] (i ascending), and
    // δ_{l−1}[i, c] = (Σ_j δ_l[i, j]·W_l[j, c], j ascending)·σ'(z_{l−1}[i, c]).
    for (size_t l = hidden_; l-- > 0;) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const int64_t in_stride = stride(cols);
      const int64_t out_stride = stride(rows);
      const T* below = l == 0 ? padded_inputs_.data() : activations_[l - 1].data();
      const T* d = deltas_[l].data();
      T* grad = net.gradients[l] + s * rows * cols;
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t cb = 0; cb < blocks(cols); ++cb) {
          V sum = {};
          for (int64_t i = 0; i < n; ++i) {
            sum = vector_madd<T>(splat(d[i * out_stride + j]),
                                 load(below + i * in_stride + cb * kLanes), sum);
          }
          store(gradient_row_.data() + cb * kLanes, sum);
        }
        for (int64_t c = 0; c < cols; ++c) grad[j * cols + c] = gradient_row_.data()[c];
      }
      if (l == 0) continue;
      const T* w = net.weights[l] + s * rows * cols;
      T* wp = padded_weights_[l].data();  // [rows, stride(cols)]: W_l, padded with zeros
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t c = 0; c < cols; ++c) wp[j * in_stride + c] = w[j * cols + c];
      }
      T* next_delta = deltas_[l - 1].data();
      const T* slope = slopes_[l - 1].data();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t cb = 0; cb < blocks(cols); ++cb) {
          V sum = {};
          for (int64_t j = 0; j < rows; ++j)
            sum = vector_madd<T>(splat(d[i * out_stride + j]),
                                 load(wp + j * in_stride + cb * kLanes), sum);
          const int64_t at = i * in_stride + cb * kLanes;
          store(next_delta + at, sum * load(slope + at));
        }
      }
    }
    return loss;
  }

  void activate_into(V z, T* value, T* slope) const {
    V a, sl;
    activate(z, a, sl);
    store(value, a);
    store(slope, sl);
  }

 private:
  std::vector<Buffer<T>> activations_, slopes_, deltas_, transposed_, padded_weights_;
  Buffer<T> gradient_row_, residual_, padded_inputs_, padded_output_;
};

}  // namespace
}  // namespace ncflab::fused

// The fused kernels' code (internal), included by one translation unit per instruction set
// (fused_kernels_generic.cpp, _avx2.cpp, _avx512.cpp), each compiled with its own flags and
// -ffp-contract=off. Everything here has internal linkage, so no function compiled for a
// wider instruction set can stand in for the generic one at link time.
//
// Layouts. One member ("single"): activations sample-major [n, k], rows padded to whole
// vectors, the sums held in vectors of units. Several members ("lanes"): the same sums on
// vectors whose lanes are members, weights gathered as [rows, cols] of vectors. For each
// member both do the same multiply-adds in the same order. The primitives: fused_simd.h.
#pragma once

#include <cmath>
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

// The loss terms, shared by both paths so that they round alike. Square: ½e², ∂ℓ/∂H = e.
// Logistic: softplus(m) with m = −y·H, as torch::softplus (threshold 20); ∂ℓ/∂H =
// −y·sigmoid(m).
template <typename T>
inline void add_loss_term(bool logistic, T h, T y, double& total, T& residual) {
  if (!logistic) {
    const T e = h - y;
    total += 0.5 * static_cast<double>(e) * static_cast<double>(e);
    residual = e;
  } else {
    const T m = -y * h;
    total += m > T(20) ? static_cast<double>(m) : std::log1p(std::exp(static_cast<double>(m)));
    residual = -y * (T(1) / (T(1) + std::exp(-m)));
  }
}

/// The kernel for element type T and vector type V (lanes = sizeof(V) / sizeof(T)).
template <typename T, typename V>
class Kernel final : public MemberKernel<T> {
  static constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(T));
  using Mask = decltype(V{} > V{});

 public:
  explicit Kernel(const Net<T>& net)
      : samples_(net.samples),
        hidden_(net.hidden),
        learned_output_(net.learned_output),
        p_(net.p),
        negative_(static_cast<T>(net.negative_coefficient)) {
    for (size_t l = 0; l < net.layers; ++l)
      shapes_.push_back({net.shapes[2 * l], net.shapes[2 * l + 1]});
    const auto n = static_cast<size_t>(samples_);
    size_t widest = 0;
    for (const auto& shape : shapes_) {
      const auto size = static_cast<size_t>(shape.rows * shape.cols);
      lane_weights_.emplace_back(size);
      lane_gradients_.emplace_back(size);
      // Each layer its own padded copies, so their padding stays zero.
      const auto padded = static_cast<size_t>(stride(shape.rows) * stride(shape.cols));
      transposed_.emplace_back(padded);
      padded_weights_.emplace_back(padded);
      const auto width = static_cast<size_t>(
          stride(shape.rows) > stride(shape.cols) ? stride(shape.rows) : stride(shape.cols));
      widest = width > widest ? width : widest;
    }
    for (size_t l = 0; l < hidden_; ++l) {
      const auto size = n * static_cast<size_t>(shapes_[l].rows);
      const auto padded = n * static_cast<size_t>(stride(shapes_[l].rows));
      activations_.emplace_back(padded);
      slopes_.emplace_back(padded);
      deltas_.emplace_back(padded);
      lane_activations_.emplace_back(size);
      lane_slopes_.emplace_back(size);
      lane_deltas_.emplace_back(size);
    }
    gradient_row_ = Buffer<T>(widest);
    residual_ = Buffer<T>(n);
    lane_residual_ = Buffer<V>(n);
    const auto d = shapes_.front().cols;
    padded_inputs_ = Buffer<T>(n * static_cast<size_t>(stride(d)));
    for (size_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < d; ++c)
        padded_inputs_.data()[i * static_cast<size_t>(stride(d)) + static_cast<size_t>(c)] =
            net.inputs[i * static_cast<size_t>(d) + static_cast<size_t>(c)];
    }
    const auto last_width = static_cast<size_t>(shapes_[hidden_ - 1].rows);
    padded_output_ = Buffer<T>(static_cast<size_t>(stride(shapes_[hidden_ - 1].rows)));
    lane_ones_ = Buffer<V>(last_width);
    for (size_t j = 0; j < last_width; ++j) lane_ones_.data()[j] = splat(T(1));
  }

  int lanes() const override { return kLanes; }

  void evaluate(const Net<T>& net, const int64_t* members, int count, double* losses) override {
    if (count == 1) {
      losses[0] = evaluate_member(net, members[0]);
      return;
    }
    int64_t group[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) group[lane] = members[lane < count ? lane : 0];
    double lane_losses[kLanes] = {};
    evaluate_lanes(net, group, lane_losses);
    write_gradients(net, group, count);
    for (int lane = 0; lane < count; ++lane) losses[lane] = lane_losses[lane];
  }

 private:
  // x in every lane (one broadcast; a loop over the lanes compiles to one masked move each).
  static V splat(T x) { return splat(x, std::make_index_sequence<kLanes>()); }
  template <size_t... Lane>
  static V splat(T x, std::index_sequence<Lane...>) {
    return V{((void)Lane, x)...};
  }

  static V select(Mask mask, V yes, V no) { return (V)(((Mask)yes & mask) | ((Mask)no & ~mask)); }

  // σ(z) and σ'(z) for integer p ≥ 1 (SPEC §1); at z = 0 the slope is α for p = 1, the left
  // slope, as in activation.cpp and PyTorch's leaky_relu backward.
  void activate(T z, T& value, T& slope) const {
    const T side = z > 0 ? T(1) : negative_;
    if (p_ == 1) {
      value = side * z;
      slope = side;
      return;
    }
    T power = z;  // z^(p−1)
    for (int64_t i = 2; i < p_; ++i) power *= z;
    value = side * (power * z);
    slope = side * (static_cast<T>(p_) * power);
  }

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

  // ---- one member: vectors of its units ----
  //
  // Rows of activations, slopes and deltas are padded to whole vectors (stride(k) ≥ k), as
  // are the weights' rows in their copies: padded units have zero weights, so they add
  // nothing anywhere; only real entries are ever written back.

  static int64_t blocks(int64_t k) { return (k + kLanes - 1) / kLanes; }
  static int64_t stride(int64_t k) { return blocks(k) * kLanes; }
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }

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

  // ---- kLanes members interleaved ----

  void evaluate_lanes(const Net<T>& net, const int64_t* group, double* losses) {
    const int64_t n = samples_;
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l].rows * shapes_[l].cols;
      V* w = lane_weights_[l].data();
      const T* source[kLanes];
      for (int lane = 0; lane < kLanes; ++lane) source[lane] = net.weights[l] + group[lane] * size;
      for (int64_t k = 0; k < size; ++k) {
        V gathered;
        for (int lane = 0; lane < kLanes; ++lane) gathered[lane] = source[lane][k];
        w[k] = gathered;
      }
    }
    // Forward: the same sums as evaluate_member's, unit by unit, c ascending.
    const V* previous = nullptr;
    for (size_t l = 0; l < hidden_; ++l) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const V* w = lane_weights_[l].data();
      V* a = lane_activations_[l].data();
      V* slope = lane_slopes_[l].data();
      for (int64_t i = 0; i < n; ++i) {
        if (l == 0) {
          forward_row(net.inputs + i * cols, w, rows, cols, a + i * rows, slope + i * rows);
        } else {
          forward_row(previous + i * cols, w, rows, cols, a + i * rows, slope + i * rows);
        }
      }
      previous = a;
    }
    const size_t output = shapes_.size() - 1;
    const int64_t last_width = shapes_[hidden_ - 1].rows;
    const V* output_weights = learned_output_ ? lane_weights_[output].data() : lane_ones_.data();
    V* r = lane_residual_.data();
    for (int64_t i = 0; i < n; ++i) {
      const V* a = previous + i * last_width;
      V h = {};
      for (int64_t j = 0; j < last_width; ++j) h = vector_madd<T>(output_weights[j], a[j], h);
      for (int lane = 0; lane < kLanes; ++lane) {
        T residual = 0;
        add_loss_term(net.logistic, h[lane], net.labels[i], losses[lane], residual);
        r[i][lane] = residual;
      }
    }
    V* grad_last = learned_output_ ? lane_gradients_[output].data() : nullptr;
    if (grad_last != nullptr) {
      for (int64_t j = 0; j < last_width; ++j) grad_last[j] = V{};
    }
    V* delta = lane_deltas_[hidden_ - 1].data();
    const V* last_slope = lane_slopes_[hidden_ - 1].data();
    for (int64_t i = 0; i < n; ++i) {
      const V* a = previous + i * last_width;
      const V ri = r[i];
      V* d = delta + i * last_width;
      const V* sl = last_slope + i * last_width;
      if (grad_last != nullptr) {
        for (int64_t j = 0; j < last_width; ++j)
          grad_last[j] = vector_madd<T>(ri, a[j], grad_last[j]);
      }
      for (int64_t j = 0; j < last_width; ++j) d[j] = ri * output_weights[j] * sl[j];
    }
    // Hidden layers, last to first, each sum in registers: ∇W_l[j, c] over the samples,
    // δ_{l−1}[i, c] over the units (the same order as evaluate_member's).
    for (size_t l = hidden_; l-- > 0;) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const V* d = lane_deltas_[l].data();
      V* grad = lane_gradients_[l].data();
      if (l == 0) {
        weight_gradient(d, net.inputs, rows, cols, grad);
      } else {
        weight_gradient(d, lane_activations_[l - 1].data(), rows, cols, grad);
        delta_below(d, lane_weights_[l].data(), lane_slopes_[l - 1].data(), rows, cols,
                    lane_deltas_[l - 1].data());
      }
    }
  }

  // ∇W[j, c] = Σ_i δ[i, j]·in[i, c], i ascending from 0, in blocks of units × inputs held in
  // registers (as many as the instruction set has: 32 vector registers with AVX-512, 16
  // otherwise).
  static constexpr int kGradientUnits = sizeof(V) == 64 ? 4 : 2;
  static constexpr int kGradientInputs = 4;

  template <typename In>
  void weight_gradient(const V* d, const In* in, int64_t rows, int64_t cols, V* grad) const {
    int64_t j = 0;
    for (; j + kGradientUnits <= rows; j += kGradientUnits) {
      int64_t c = 0;
      for (; c + kGradientInputs <= cols; c += kGradientInputs)
        gradient_block<kGradientUnits, kGradientInputs>(d, in, rows, cols, j, c, grad);
      for (; c < cols; ++c) gradient_block<kGradientUnits, 1>(d, in, rows, cols, j, c, grad);
    }
    for (; j < rows; ++j) {
      int64_t c = 0;
      for (; c + kGradientInputs <= cols; c += kGradientInputs)
        gradient_block<1, kGradientInputs>(d, in, rows, cols, j, c, grad);
      for (; c < cols; ++c) gradient_block<1, 1>(d, in, rows, cols, j, c, grad);
    }
  }

  template <int Units, int Inputs, typename In>
  void gradient_block(const V* d, const In* in, int64_t rows, int64_t cols, int64_t j0, int64_t c0,
                      V* grad) const {
    V sum[Units][Inputs] = {};
    for (int64_t i = 0; i < samples_; ++i) {
      const V* di = d + i * rows + j0;
      const In* x = in + i * cols + c0;
      V input[Inputs];
      for (int b = 0; b < Inputs; ++b) input[b] = as_vector(x[b]);
      for (int a = 0; a < Units; ++a) {
        const V delta = di[a];
        for (int b = 0; b < Inputs; ++b) sum[a][b] = vector_madd<T>(delta, input[b], sum[a][b]);
      }
    }
    for (int a = 0; a < Units; ++a) {
      for (int b = 0; b < Inputs; ++b) grad[(j0 + a) * cols + c0 + b] = sum[a][b];
    }
  }

  // δ_below[i, c] = (Σ_j δ[i, j]·W[j, c], j ascending from 0)·σ'(z_below[i, c]).
  static constexpr int kDeltaInputs = 8;

  void delta_below(const V* d, const V* w, const V* slope, int64_t rows, int64_t cols,
                   V* below) const {
    for (int64_t i = 0; i < samples_; ++i) {
      const V* di = d + i * rows;
      int64_t c = 0;
      for (; c + kDeltaInputs <= cols; c += kDeltaInputs)
        delta_block<kDeltaInputs>(di, w, slope + i * cols, rows, cols, c, below + i * cols);
      // The rest in blocks of 4 and 2 too: a lone sum is one chain of dependent multiply-adds,
      // 4 columns alone cost as much as 16 together.
      if (c + 4 <= cols) {
        delta_block<4>(di, w, slope + i * cols, rows, cols, c, below + i * cols);
        c += 4;
      }
      if (c + 2 <= cols) {
        delta_block<2>(di, w, slope + i * cols, rows, cols, c, below + i * cols);
        c += 2;
      }
      for (; c < cols; ++c)
        delta_block<1>(di, w, slope + i * cols, rows, cols, c, below + i * cols);
    }
  }

  template <int Inputs>
  void delta_block(const V* di, const V* w, const V* slope, int64_t rows, int64_t cols, int64_t c0,
                   V* below) const {
    V sum[Inputs] = {};
    for (int64_t j = 0; j < rows; ++j) {
      const V delta = di[j];
      const V* wj = w + j * cols + c0;
      for (int b = 0; b < Inputs; ++b) sum[b] = vector_madd<T>(delta, wj[b], sum[b]);
    }
    for (int b = 0; b < Inputs; ++b) below[c0 + b] = sum[b] * slope[c0 + b];
  }

  // One sample's hidden row: z[j] = Σ_c in[c]·W[j, c] (c ascending, from 0), then σ.
  // Four units at a time share each load of in[c].
  template <typename In>
  void forward_row(const In* in, const V* w, int64_t rows, int64_t cols, V* a, V* slope) const {
    int64_t j = 0;
    for (; j + 4 <= rows; j += 4) {
      V z0 = {}, z1 = {}, z2 = {}, z3 = {};
      const V* w0 = w + j * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const V x = as_vector(in[c]);
        z0 = vector_madd<T>(x, w0[c], z0);
        z1 = vector_madd<T>(x, w0[cols + c], z1);
        z2 = vector_madd<T>(x, w0[2 * cols + c], z2);
        z3 = vector_madd<T>(x, w0[3 * cols + c], z3);
      }
      activate(z0, a[j], slope[j]);
      activate(z1, a[j + 1], slope[j + 1]);
      activate(z2, a[j + 2], slope[j + 2]);
      activate(z3, a[j + 3], slope[j + 3]);
    }
    for (; j < rows; ++j) {
      V z = {};
      const V* wj = w + j * cols;
      for (int64_t c = 0; c < cols; ++c) z = vector_madd<T>(as_vector(in[c]), wj[c], z);
      activate(z, a[j], slope[j]);
    }
  }

  static V as_vector(T x) { return splat(x); }
  static V as_vector(V x) { return x; }

  void write_gradients(const Net<T>& net, const int64_t* group, int count) const {
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l].rows * shapes_[l].cols;
      const V* g = lane_gradients_[l].data();
      for (int lane = 0; lane < count; ++lane) {
        T* target = net.gradients[l] + group[lane] * size;
        for (int64_t k = 0; k < size; ++k) target[k] = g[k][lane];
      }
    }
  }

  int64_t samples_;
  size_t hidden_;
  bool learned_output_;
  int64_t p_;
  T negative_;
  std::vector<Shape> shapes_;
  // One member (rows padded to whole vectors).
  std::vector<Buffer<T>> activations_, slopes_, deltas_, transposed_, padded_weights_;
  Buffer<T> gradient_row_, residual_, padded_inputs_, padded_output_;
  // Lanes.
  std::vector<Buffer<V>> lane_weights_, lane_gradients_;
  std::vector<Buffer<V>> lane_activations_, lane_slopes_, lane_deltas_;
  Buffer<V> lane_residual_, lane_ones_;
};

}  // namespace
}  // namespace ncflab::fused

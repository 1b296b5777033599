// The fused kernels' lanes layout (internal; included once per instruction set by
// fused_kernels_impl.h): kLanes members interleaved, the sums on vectors whose lanes are
// members, weights gathered as [rows, cols] of vectors, register-blocked gradient and delta
// sums.
#pragma once

#include <type_traits>
#include <vector>

#include "fused_kernel_terms.h"

namespace ncflab::fused {
namespace {

template <typename T, typename V>
class LanesPath : private KernelTerms<T, V> {
  using Terms = KernelTerms<T, V>;
  using Terms::activate;
  using Terms::hidden_;
  using Terms::kLanes;
  using Terms::learned_output_;
  using Terms::samples_;
  using Terms::shapes_;
  using Terms::splat;

 public:
  explicit LanesPath(const Net<T>& net) : Terms(net) {
    const auto n = static_cast<size_t>(samples_);
    for (const auto& shape : shapes_) {
      const auto size = static_cast<size_t>(shape.rows * shape.cols);
      lane_weights_.emplace_back(size);
      lane_gradients_.emplace_back(size);
    }
    for (size_t l = 0; l < hidden_; ++l) {
      const auto size = n * static_cast<size_t>(shapes_[l].rows);
      lane_activations_.emplace_back(size);
      lane_slopes_.emplace_back(size);
      lane_deltas_.emplace_back(size);
    }
    lane_residual_ = Buffer<V>(n);
    const auto last_width = static_cast<size_t>(shapes_[hidden_ - 1].rows);
    lane_ones_ = Buffer<V>(last_width);
    for (size_t j = 0; j < last_width; ++j) lane_ones_.data()[j] = splat(T(1));
  }

  // The weights of group[0..kLanes) into the lanes.
  void gather_weights(const Net<T>& net, const int64_t* group) {
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
  }

  // w ← w − η·g in the lanes m < count with running[m] != 0; the others keep their bits
  // (a blend, not a zero step: g may be inf or NaN in a diverged member's lane).
  void update_weights(T eta, const uint8_t* running, int count) {
    V on = {};
    for (int lane = 0; lane < count; ++lane) on[lane] = running[lane] ? T(1) : T(0);
    const auto mask = on > V{};
    const V step = splat(eta);
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l].rows * shapes_[l].cols;
      V* w = lane_weights_[l].data();
      const V* g = lane_gradients_[l].data();
      for (int64_t k = 0; k < size; ++k) w[k] = Terms::select(mask, w[k] - step * g[k], w[k]);
    }
  }

  // The gathered weights' loss, gradients (kept in the lanes) and norms.
  void evaluate_lanes(const Net<T>& net, MemberNumbers* numbers) {
    const int64_t n = samples_;
    // Forward: the same sums as evaluate_member's, unit by unit, c ascending.
    const V* previous = nullptr;
    for (size_t l = 0; l < hidden_; ++l) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const V* w = lane_weights_[l].data();
      V* a = lane_activations_[l].data();
      V* slope = lane_slopes_[l].data();
      int64_t i = 0;
      for (; i + 2 <= n; i += 2) {
        if (l == 0) {
          forward_rows2(net.inputs + i * cols, w, rows, cols, a + i * rows, slope + i * rows);
        } else {
          forward_rows2(previous + i * cols, w, rows, cols, a + i * rows, slope + i * rows);
        }
      }
      for (; i < n; ++i) {
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
        add_loss_term(net.logistic, h[lane], net.labels[i], numbers[lane].loss, residual);
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
    squared_norms(numbers);
  }

  // member_squared_norms for every lane at once: each lane's sums in the same order, the
  // lanes' chains of additions side by side instead of one after another.
  void squared_norms(MemberNumbers* numbers) const {
    if constexpr (std::is_same_v<T, double>) {
      // Float64 lanes: the sums are vectors (mul, then add: no contraction in these units).
      V weight_norm2 = {};
      V gradient_norm2 = {};
      for (size_t l = 0; l < shapes_.size(); ++l) {
        const int64_t size = shapes_[l].rows * shapes_[l].cols;
        const V* w = lane_weights_[l].data();
        const V* g = lane_gradients_[l].data();
        for (int64_t k = 0; k < size; ++k) {
          weight_norm2 += w[k] * w[k];
          gradient_norm2 += g[k] * g[k];
        }
      }
      for (int lane = 0; lane < kLanes; ++lane) {
        numbers[lane].weight_norm2 = weight_norm2[lane];
        numbers[lane].gradient_norm2 = gradient_norm2[lane];
      }
      return;
    }
    double weight_norm2[kLanes] = {};
    double gradient_norm2[kLanes] = {};
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l].rows * shapes_[l].cols;
      const V* w = lane_weights_[l].data();
      const V* g = lane_gradients_[l].data();
      for (int64_t k = 0; k < size; ++k) {
        for (int lane = 0; lane < kLanes; ++lane) {
          weight_norm2[lane] += static_cast<double>(w[k][lane]) * static_cast<double>(w[k][lane]);
          gradient_norm2[lane] += static_cast<double>(g[k][lane]) * static_cast<double>(g[k][lane]);
        }
      }
    }
    for (int lane = 0; lane < kLanes; ++lane) {
      numbers[lane].weight_norm2 = weight_norm2[lane];
      numbers[lane].gradient_norm2 = gradient_norm2[lane];
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

  // Two samples' rows (in, in + cols → a, a + rows) at once: eight independent sums of four
  // units × two samples, enough to keep two FMA units busy through their latency (four sums
  // alone leave half of it idle at these short rows); each sum as forward_row's.
  template <typename In>
  void forward_rows2(const In* in, const V* w, int64_t rows, int64_t cols, V* a, V* slope) const {
    const In* in1 = in + cols;
    V* a1 = a + rows;
    V* slope1 = slope + rows;
    int64_t j = 0;
    for (; j + 4 <= rows; j += 4) {
      V z0 = {}, z1 = {}, z2 = {}, z3 = {};
      V y0 = {}, y1 = {}, y2 = {}, y3 = {};
      const V* w0 = w + j * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const V x = as_vector(in[c]);
        const V u = as_vector(in1[c]);
        const V v0 = w0[c], v1 = w0[cols + c], v2 = w0[2 * cols + c], v3 = w0[3 * cols + c];
        z0 = vector_madd<T>(x, v0, z0);
        z1 = vector_madd<T>(x, v1, z1);
        z2 = vector_madd<T>(x, v2, z2);
        z3 = vector_madd<T>(x, v3, z3);
        y0 = vector_madd<T>(u, v0, y0);
        y1 = vector_madd<T>(u, v1, y1);
        y2 = vector_madd<T>(u, v2, y2);
        y3 = vector_madd<T>(u, v3, y3);
      }
      activate(z0, a[j], slope[j]);
      activate(z1, a[j + 1], slope[j + 1]);
      activate(z2, a[j + 2], slope[j + 2]);
      activate(z3, a[j + 3], slope[j + 3]);
      activate(y0, a1[j], slope1[j]);
      activate(y1, a1[j + 1], slope1[j + 1]);
      activate(y2, a1[j + 2], slope1[j + 2]);
      activate(y3, a1[j + 3], slope1[j + 3]);
    }
    for (; j < rows; ++j) {
      V z = {}, y = {};
      const V* wj = w + j * cols;
      for (int64_t c = 0; c < cols; ++c) {
        z = vector_madd<T>(as_vector(in[c]), wj[c], z);
        y = vector_madd<T>(as_vector(in1[c]), wj[c], y);
      }
      activate(z, a[j], slope[j]);
      activate(y, a1[j], slope1[j]);
    }
  }

  static V as_vector(T x) { return splat(x); }
  static V as_vector(V x) { return x; }

  void write_gradients(const Net<T>& net, const int64_t* group, int count) const {
    scatter(lane_gradients_, net.gradients, group, count);
  }
  void write_weights(const Net<T>& net, const int64_t* group, int count) const {
    scatter(lane_weights_, net.weights, group, count);
  }

 private:
  // Lanes 0..count) of every layer into the blocks of members group[0..count).
  void scatter(const std::vector<Buffer<V>>& lanes, T* const* blocks, const int64_t* group,
               int count) const {
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l].rows * shapes_[l].cols;
      const V* from = lanes[l].data();
      for (int lane = 0; lane < count; ++lane) {
        T* target = blocks[l] + group[lane] * size;
        for (int64_t k = 0; k < size; ++k) target[k] = from[k][lane];
      }
    }
  }

  std::vector<Buffer<V>> lane_weights_, lane_gradients_;
  std::vector<Buffer<V>> lane_activations_, lane_slopes_, lane_deltas_;
  Buffer<V> lane_residual_, lane_ones_;
};

}  // namespace
}  // namespace ncflab::fused

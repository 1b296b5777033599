// The fused kernels' path for wide nets (internal; included once per instruction set by
// fused_kernels_impl.h): one member's loss and gradient with register-tiled matrix products
// of its own instead of the BLAS's, so that an ensemble runs a member per core on the
// WorkTeam (the BLAS would start a thread team of its own inside each), with σ, σ' and the
// deltas applied as each tile is stored rather than in passes of their own.
//
// Layout: activations, slopes and deltas unit-major [k_l, n'], the samples padded with zeros
// to n' (whole tiles). Padded samples have zero inputs and zero residuals, so they add
// nothing to any sum. Products W·a and Wᵀ·δ: tiles of kRows units × kCols vectors of
// samples held in registers, W packed in panels of kRows rows; δ·aᵀ: 4 × 4 dot products over
// the samples, each a vector of partial sums added up lane by lane in order. Every sum has a
// fixed order, whichever thread runs the member.
#pragma once

#include <vector>

#include "fused_kernel_terms.h"

namespace ncflab::fused {
namespace {

template <typename T, typename V>
class WidePath : private KernelTerms<T, V> {
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

  // Accumulators in registers: kRows × kCols vectors (24 of AVX-512's 32, 12 of 16 otherwise).
  static constexpr int kRows = sizeof(V) == 64 ? 8 : 4;
  static constexpr int kCols = 3;

 public:
  explicit WidePath(const Net<T>& net) : Terms(net) {
    const int64_t tile = kCols * kLanes;
    padded_ = (samples_ + tile - 1) / tile * tile;
    const int64_t d = shapes_.front().cols;
    inputs_t_ = Buffer<T>(static_cast<size_t>(d * padded_));
    for (int64_t i = 0; i < samples_; ++i) {
      for (int64_t c = 0; c < d; ++c) inputs_t_.data()[c * padded_ + i] = net.inputs[i * d + c];
    }
    size_t pack = 0;
    for (size_t l = 0; l < hidden_; ++l) {
      const auto size = static_cast<size_t>(shapes_[l].rows * padded_);
      activations_.emplace_back(size);
      slopes_.emplace_back(size);
      deltas_.emplace_back(size);
      const auto rows = static_cast<size_t>(round_up(shapes_[l].rows) * shapes_[l].cols);
      const auto cols = static_cast<size_t>(round_up(shapes_[l].cols) * shapes_[l].rows);
      pack = rows > pack ? rows : pack;
      pack = cols > pack ? cols : pack;
    }
    packed_ = Buffer<T>(pack);
    output_ = Buffer<T>(static_cast<size_t>(padded_));
    residual_ = Buffer<T>(static_cast<size_t>(padded_));
  }

  // ℓ of member s, its gradient into net.gradients.
  double evaluate_member(const Net<T>& net, int64_t s) {
    const int64_t n = samples_;
    // Forward: a_l = σ(W_l a_{l−1}), a_0 = Xᵀ.
    const T* below = inputs_t_.data();
    for (size_t l = 0; l < hidden_; ++l) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      pack_rows(net.weights[l] + s * rows * cols, rows, cols);
      product(rows, cols, below, [&](int64_t j, int64_t i, V z) {
        V value, slope;
        activate(z, value, slope);
        store(activations_[l].data() + j * padded_ + i, value);
        store(slopes_[l].data() + j * padded_ + i, slope);
      });
      below = activations_[l].data();
    }
    // Output H = W_K a_{K−1} (units ascending), the loss and ∂ℓ/∂H (zero on padding).
    const size_t output = shapes_.size() - 1;
    const int64_t top = shapes_[hidden_ - 1].rows;
    const T* w_out = learned_output_ ? net.weights[output] + s * top : nullptr;
    T* h = output_.data();
    for (int64_t i = 0; i < padded_; i += kLanes) {
      V sum = {};
      for (int64_t j = 0; j < top; ++j) {
        const V weight = splat(w_out ? w_out[j] : T(1));
        sum = vector_madd<T>(weight, load(below + j * padded_ + i), sum);
      }
      store(h + i, sum);
    }
    double loss = 0;
    T* r = residual_.data();
    for (int64_t i = 0; i < n; ++i) add_loss_term(net.logistic, h[i], net.labels[i], loss, r[i]);
    // Backward: ∇W_K[j] = Σ_i r_i a_{K−1}[j, i]; δ_{K−1} = r W_K ⊙ σ'.
    if (learned_output_) dots(r, 1, below, top, net.gradients[output] + s * top);
    {
      T* delta = deltas_[hidden_ - 1].data();
      const T* slope = slopes_[hidden_ - 1].data();
      for (int64_t j = 0; j < top; ++j) {
        const V weight = splat(w_out ? w_out[j] : T(1));
        for (int64_t i = 0; i < padded_; i += kLanes) {
          const int64_t at = j * padded_ + i;
          store(delta + at, load(r + i) * weight * load(slope + at));
        }
      }
    }
    // Hidden layers, last to first: ∇W_l = δ_l a_{l−1}ᵀ, δ_{l−1} = (W_lᵀ δ_l) ⊙ σ'(z_{l−1}).
    for (size_t l = hidden_; l-- > 0;) {
      const int64_t rows = shapes_[l].rows;
      const int64_t cols = shapes_[l].cols;
      const T* in = l == 0 ? inputs_t_.data() : activations_[l - 1].data();
      dots(deltas_[l].data(), rows, in, cols, net.gradients[l] + s * rows * cols);
      if (l == 0) break;
      pack_columns(net.weights[l] + s * rows * cols, rows, cols);
      T* next = deltas_[l - 1].data();
      const T* slope = slopes_[l - 1].data();
      product(cols, rows, deltas_[l].data(), [&](int64_t c, int64_t i, V sum) {
        const int64_t at = c * padded_ + i;
        store(next + at, sum * load(slope + at));
      });
    }
    return loss;
  }

 private:
  static int64_t round_up(int64_t rows) { return (rows + kRows - 1) / kRows * kRows; }

  // W [rows, cols] into panels of kRows rows, each panel column by column (zero rows pad the
  // last): the tile's kRows weights for one input sit side by side.
  void pack_rows(const T* w, int64_t rows, int64_t cols) {
    T* p = packed_.data();
    for (int64_t j0 = 0; j0 < rows; j0 += kRows) {
      for (int64_t c = 0; c < cols; ++c) {
        for (int a = 0; a < kRows; ++a) *p++ = j0 + a < rows ? w[(j0 + a) * cols + c] : T(0);
      }
    }
  }
  // Wᵀ [cols, rows] likewise (for Wᵀ·δ).
  void pack_columns(const T* w, int64_t rows, int64_t cols) {
    T* p = packed_.data();
    for (int64_t c0 = 0; c0 < cols; c0 += kRows) {
      for (int64_t j = 0; j < rows; ++j) {
        for (int a = 0; a < kRows; ++a) *p++ = c0 + a < cols ? w[j * cols + c0 + a] : T(0);
      }
    }
  }

  // out[u, i] = Σ_k packed[u, k]·in[k, i] (k ascending from 0) for u < units, handed to
  // `apply(u, i, sum)` a vector of samples at a time.
  template <typename Apply>
  void product(int64_t units, int64_t depth, const T* in, const Apply& apply) const {
    for (int64_t i = 0; i < padded_; i += kCols * kLanes) {
      for (int64_t u0 = 0; u0 < units; u0 += kRows) {
        const T* panel = packed_.data() + u0 * depth;
        V sum[kRows][kCols] = {};
        for (int64_t k = 0; k < depth; ++k) {
          const T* row = in + k * padded_ + i;
          V b[kCols];
          for (int v = 0; v < kCols; ++v) b[v] = load(row + v * kLanes);
          for (int a = 0; a < kRows; ++a) {
            const V weight = splat(panel[k * kRows + a]);
            for (int v = 0; v < kCols; ++v) sum[a][v] = vector_madd<T>(weight, b[v], sum[a][v]);
          }
        }
        for (int a = 0; a < kRows && u0 + a < units; ++a) {
          for (int v = 0; v < kCols; ++v) apply(u0 + a, i + v * kLanes, sum[a][v]);
        }
      }
    }
  }

  static T lane_sum(V v) {
    T total = 0;
    for (int lane = 0; lane < kLanes; ++lane) total += v[lane];
    return total;
  }

  // grad[j, c] = Σ_i d[j, i]·in[c, i] for j < rows, c < cols, in blocks of 4 × 4: each sum
  // vector partial sums over the padded samples, then the lanes in order.
  void dots(const T* d, int64_t rows, const T* in, int64_t cols, T* grad) const {
    int64_t j = 0;
    for (; j + 4 <= rows; j += 4) {
      int64_t c = 0;
      for (; c + 4 <= cols; c += 4) dot_block<4, 4>(d, j, in, c, cols, grad);
      for (; c < cols; ++c) dot_block<4, 1>(d, j, in, c, cols, grad);
    }
    for (; j < rows; ++j) {
      int64_t c = 0;
      for (; c + 4 <= cols; c += 4) dot_block<1, 4>(d, j, in, c, cols, grad);
      for (; c < cols; ++c) dot_block<1, 1>(d, j, in, c, cols, grad);
    }
  }
  template <int Units, int Inputs>
  void dot_block(const T* d, int64_t j0, const T* in, int64_t c0, int64_t cols, T* grad) const {
    V sum[Units][Inputs] = {};
    for (int64_t i = 0; i < padded_; i += kLanes) {
      V x[Inputs];
      for (int b = 0; b < Inputs; ++b) x[b] = load(in + (c0 + b) * padded_ + i);
      for (int a = 0; a < Units; ++a) {
        const V delta = load(d + (j0 + a) * padded_ + i);
        for (int b = 0; b < Inputs; ++b) sum[a][b] = vector_madd<T>(delta, x[b], sum[a][b]);
      }
    }
    for (int a = 0; a < Units; ++a) {
      for (int b = 0; b < Inputs; ++b) grad[(j0 + a) * cols + c0 + b] = lane_sum(sum[a][b]);
    }
  }

  int64_t padded_ = 0;
  Buffer<T> inputs_t_, packed_, output_, residual_;
  std::vector<Buffer<T>> activations_, slopes_, deltas_;
};

}  // namespace
}  // namespace ncflab::fused

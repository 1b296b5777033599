// The fused kernels' path for wide nets (internal; included once per instruction set by
// fused_kernels_impl.h): one member's loss and gradient with register-tiled matrix products
// of its own, with σ, σ' and the deltas applied as each tile is stored rather than in passes
// of their own. The work comes in stages of independent pieces, so that the engine can run a
// member per thread, or, with fewer members than threads, share one member's pieces out
// among the threads. Not the BLAS: called from the engine's threads it would start a team of
// its own inside each, and for one member the shared tiles measured as fast or faster
// (README, Speed).
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
    tiles_ = (samples_ + kTile - 1) / kTile;
    padded_ = tiles_ * kTile;
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
    loss_terms_ = Buffer<double>(static_cast<size_t>(samples_));
  }

  // ℓ of member s, its gradient into net.gradients: the stages below in order, on this thread.
  double evaluate_member(const Net<T>& net, int64_t s) {
    for (int stage = 0; stage < stages(); ++stage) {
      begin_stage(net, s, stage);
      for (int64_t piece = 0; piece < pieces(stage); ++piece) run_piece(net, s, stage, piece);
    }
    return staged_loss();
  }

  // The evaluation in stages, for one member spread over threads. Forward stages, one per
  // hidden layer (pieces: tiles of samples); the top (the output, the loss terms and the top
  // deltas; pieces: tiles of samples); backward stages, the hidden layers last to first (pieces:
  // blocks of kDotRows gradient rows, the output row's gradient, then tiles of samples of the
  // next deltas). A stage's pieces write disjoint data and read only earlier stages', and every
  // sum lies within one piece in a fixed order, so any split over threads gives the same bits.
  int stages() const { return 2 * static_cast<int>(hidden_) + 1; }

  int64_t pieces(int stage) const {
    if (stage <= top_stage()) return tiles_;
    const size_t l = backward_layer(stage);
    return row_blocks(l) + (output_row_piece(l) ? 1 : 0) + (l > 0 ? tiles_ : 0);
  }

  // A stage's work before its pieces, on one thread: W packed for the stage's products.
  void begin_stage(const Net<T>& net, int64_t s, int stage) {
    if (stage < top_stage()) {
      const auto l = static_cast<size_t>(stage);
      pack_rows(net.weights[l] + s * shapes_[l].rows * shapes_[l].cols, shapes_[l].rows,
                shapes_[l].cols);
    } else if (stage > top_stage()) {
      const size_t l = backward_layer(stage);
      if (l > 0) {
        pack_columns(net.weights[l] + s * shapes_[l].rows * shapes_[l].cols, shapes_[l].rows,
                     shapes_[l].cols);
      }
    }
  }

  void run_piece(const Net<T>& net, int64_t s, int stage, int64_t piece) {
    if (stage < top_stage()) {
      forward_tile(static_cast<size_t>(stage), piece);
    } else if (stage == top_stage()) {
      top_tile(net, s, piece);
    } else {
      backward_piece(net, s, backward_layer(stage), piece);
    }
  }

  // ℓ after the last stage: the loss terms summed in sample order.
  double staged_loss() const {
    double loss = 0;
    for (int64_t i = 0; i < samples_; ++i) loss += loss_terms_.data()[i];
    return loss;
  }

 private:
  static constexpr int64_t kTile = kCols * kLanes;  // samples per tile
  static constexpr int64_t kDotRows = 16;           // gradient rows per piece of dots

  static int64_t round_up(int64_t rows) { return (rows + kRows - 1) / kRows * kRows; }
  int top_stage() const { return static_cast<int>(hidden_); }
  size_t backward_layer(int stage) const { return 2 * hidden_ - static_cast<size_t>(stage); }
  int64_t row_blocks(size_t l) const { return (shapes_[l].rows + kDotRows - 1) / kDotRows; }
  bool output_row_piece(size_t l) const { return learned_output_ && l + 1 == hidden_; }

  // a_l = σ(W_l a_{l−1}) on tile t (a_0 = Xᵀ; W_l packed by begin_stage).
  void forward_tile(size_t l, int64_t t) {
    const T* below = l == 0 ? inputs_t_.data() : activations_[l - 1].data();
    product(shapes_[l].rows, shapes_[l].cols, below, t, [&](int64_t j, int64_t i, V z) {
      V value, slope;
      activate(z, value, slope);
      store(activations_[l].data() + j * padded_ + i, value);
      store(slopes_[l].data() + j * padded_ + i, slope);
    });
  }

  // On tile t: the output H = W_K a_{K−1} (units ascending), the loss terms and ∂ℓ/∂H = r
  // (zero on padding), and δ_{K−1} = r W_K ⊙ σ'.
  void top_tile(const Net<T>& net, int64_t s, int64_t t) {
    const size_t output = shapes_.size() - 1;
    const int64_t top = shapes_[hidden_ - 1].rows;
    const T* w_out = learned_output_ ? net.weights[output] + s * top : nullptr;
    const T* below = activations_[hidden_ - 1].data();
    const int64_t first = t * kTile;
    T* h = output_.data();
    for (int64_t i = first; i < first + kTile; i += kLanes) {
      V sum = {};
      for (int64_t j = 0; j < top; ++j) {
        const V weight = splat(w_out ? w_out[j] : T(1));
        sum = vector_madd<T>(weight, load(below + j * padded_ + i), sum);
      }
      store(h + i, sum);
    }
    T* r = residual_.data();
    const int64_t end = first + kTile < samples_ ? first + kTile : samples_;
    for (int64_t i = first; i < end; ++i)
      loss_terms_.data()[i] = loss_term(net.logistic, h[i], net.labels[i], r[i]);
    T* delta = deltas_[hidden_ - 1].data();
    const T* slope = slopes_[hidden_ - 1].data();
    for (int64_t j = 0; j < top; ++j) {
      const V weight = splat(w_out ? w_out[j] : T(1));
      for (int64_t i = first; i < first + kTile; i += kLanes) {
        const int64_t at = j * padded_ + i;
        store(delta + at, load(r + i) * weight * load(slope + at));
      }
    }
  }

  // Layer l's backward pieces: ∇W_l = δ_l a_{l−1}ᵀ by blocks of rows, the output row's
  // ∇W_K = r a_{K−1}ᵀ (after the top hidden layer's blocks), then δ_{l−1} = (W_lᵀ δ_l) ⊙
  // σ'(z_{l−1}) by tiles (W_lᵀ packed by begin_stage).
  void backward_piece(const Net<T>& net, int64_t s, size_t l, int64_t piece) {
    const int64_t rows = shapes_[l].rows;
    const int64_t cols = shapes_[l].cols;
    const T* in = l == 0 ? inputs_t_.data() : activations_[l - 1].data();
    if (piece < row_blocks(l)) {
      const int64_t j = piece * kDotRows;
      dots(deltas_[l].data(), j, j + kDotRows < rows ? j + kDotRows : rows, in, cols,
           net.gradients[l] + s * rows * cols);
      return;
    }
    piece -= row_blocks(l);
    if (output_row_piece(l)) {
      if (piece == 0) {
        const size_t output = shapes_.size() - 1;
        dots(residual_.data(), 0, 1, activations_[l].data(), rows,
             net.gradients[output] + s * rows);
        return;
      }
      --piece;
    }
    T* next = deltas_[l - 1].data();
    const T* slope = slopes_[l - 1].data();
    product(cols, rows, deltas_[l].data(), piece, [&](int64_t c, int64_t i, V sum) {
      const int64_t at = c * padded_ + i;
      store(next + at, sum * load(slope + at));
    });
  }

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

  // out[u, i] = Σ_k packed[u, k]·in[k, i] (k ascending from 0) for u < units and the samples
  // of tile t, handed to `apply(u, i, sum)` a vector of samples at a time.
  template <typename Apply>
  void product(int64_t units, int64_t depth, const T* in, int64_t t, const Apply& apply) const {
    const int64_t i = t * kTile;
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

  static T lane_sum(V v) {
    T total = 0;
    for (int lane = 0; lane < kLanes; ++lane) total += v[lane];
    return total;
  }

  // grad[j, c] = Σ_i d[j, i]·in[c, i] for first ≤ j < end, c < cols, in blocks of 4 × 4: each
  // sum vector partial sums over the padded samples, then the lanes in order. Columns outer:
  // the rows of `in` for a block of columns are read from memory once for all the rows j
  // (kDotRows of them, whose d rows stay in cache).
  void dots(const T* d, int64_t first, int64_t end, const T* in, int64_t cols, T* grad) const {
    int64_t c = 0;
    for (; c + 4 <= cols; c += 4) {
      int64_t j = first;
      for (; j + 4 <= end; j += 4) dot_block<4, 4>(d, j, in, c, cols, grad);
      for (; j < end; ++j) dot_block<1, 4>(d, j, in, c, cols, grad);
    }
    for (; c < cols; ++c) {
      int64_t j = first;
      for (; j + 4 <= end; j += 4) dot_block<4, 1>(d, j, in, c, cols, grad);
      for (; j < end; ++j) dot_block<1, 1>(d, j, in, c, cols, grad);
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
  int64_t tiles_ = 0;
  Buffer<T> inputs_t_, packed_, output_, residual_;
  Buffer<double> loss_terms_;
  std::vector<Buffer<T>> activations_, slopes_, deltas_;
};

}  // namespace
}  // namespace ncflab::fused

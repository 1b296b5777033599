// The fused CPU engine. For the small nets of this field (tens of units, tens to
// hundreds of samples) a step is ~30 ATen ops of a few microseconds of dispatch each and
// almost no arithmetic; doing the whole step in loops per member removes the dispatch.
// Layout: activations are sample-major [n, k] so every inner loop runs over contiguous
// memory (an axpy the compiler vectorises); members run in parallel on OpenMP threads
// (as many as LibTorch's intra-op threads) when the build has OpenMP.
#include "fused_engine.h"

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace ncflab {
namespace {

template <typename T>
struct Scratch {
  std::vector<std::vector<T>> activations;  // a_l [n, k_l], l = 1..K−1
  std::vector<std::vector<T>> slopes;       // σ'(z_l) [n, k_l]
  std::vector<std::vector<T>> deltas;       // ∂ℓ/∂z_l [n, k_l]
  std::vector<T> transposed;                // W_lᵀ [k_{l−1}, k_l] of the layer at hand
  std::vector<T> residual;                  // ∂ℓ/∂H [n]
};

template <typename T>
class FusedEngine final : public TrainingEngine {
 public:
  FusedEngine(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss)
      : model_(std::move(model)),
        inputs_(inputs.contiguous()),
        labels_(labels.contiguous()),
        loss_(loss),
        activation_(model_->options.activation()),
        shapes_(model_->layer_shapes()),
        hidden_(static_cast<size_t>(model_->hidden_layers())),
        learned_output_(model_->options.kind() == ModelKind::feedforward) {
    for (const auto& w : model_->weights()) {
      TORCH_CHECK(w.is_contiguous(), "fused engine – weights must be contiguous");
      gradients_.push_back(torch::zeros_like(w));
    }
    samples_ = inputs_.size(0);
    negative_coefficient_ = activation_.p() == 1       ? activation_.alpha()
                            : activation_.p() % 2 == 0 ? -activation_.alpha()
                                                       : activation_.alpha();
    // A single-layer model's output row is fixed to ones: H = Σ_j σ(w_jᵀx).
    if (!learned_output_) ones_.assign(static_cast<size_t>(shapes_[hidden_ - 1][0]), T(1));
    scratch_.resize(static_cast<size_t>(at::get_num_threads()));
    for (auto& s : scratch_) {
      for (size_t l = 0; l < hidden_; ++l) {
        const auto size = static_cast<size_t>(samples_ * shapes_[l][0]);
        s.activations.emplace_back(size);
        s.slopes.emplace_back(size);
        s.deltas.emplace_back(size);
      }
      size_t largest = 0;
      for (const auto& shape : shapes_)
        largest = std::max(largest, static_cast<size_t>(shape[0] * shape[1]));
      s.transposed.resize(largest);
      s.residual.resize(static_cast<size_t>(samples_));
    }
  }

  void evaluate(const std::vector<uint8_t>& active, StepStatistics& statistics) override {
    const auto members = static_cast<int64_t>(active.size());
    statistics.loss.resize(active.size());
    statistics.norm.resize(active.size());
    statistics.gradient_norm.resize(active.size());
    // Members are independent and each is computed by one thread in a fixed order, so
    // the results do not depend on the number of threads.
    const auto threads =
        static_cast<int>(std::min<int64_t>(static_cast<int64_t>(scratch_.size()), members));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#endif
    for (int64_t s = 0; s < members; ++s) {
      if (!active[static_cast<size_t>(s)]) continue;
#ifdef _OPENMP
      auto& scratch = scratch_[static_cast<size_t>(omp_get_thread_num())];
#else
      auto& scratch = scratch_.front();
#endif
      evaluate_member(s, scratch, statistics);
    }
    (void)threads;
  }

  void update(double step_size, const std::vector<uint8_t>& active) override {
    const auto members = static_cast<int64_t>(active.size());
    const T eta = static_cast<T>(step_size);
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l][0] * shapes_[l][1];
      T* w = model_->weights()[l].template data_ptr<T>();
      const T* g = gradients_[l].template data_ptr<T>();
      for (int64_t s = 0; s < members; ++s) {
        if (!active[static_cast<size_t>(s)]) continue;
        T* ws = w + s * size;
        const T* gs = g + s * size;
        // w − (η·g): the same rounding as the batched engine's sub_(g * η).
        for (int64_t i = 0; i < size; ++i) ws[i] -= eta * gs[i];
      }
    }
  }

  EngineKind kind() const override { return EngineKind::fused; }

 private:
  // σ(z) and σ'(z) for integer p ≥ 1 (SPEC §1); at z = 0 the slope is α for p = 1, the
  // left slope, as in activation.cpp and PyTorch's leaky_relu backward.
  void activate(T z, T& value, T& slope) const {
    const int64_t p = activation_.p();
    const T side = z > 0 ? T(1) : static_cast<T>(negative_coefficient_);
    if (p == 1) {
      value = side * z;
      slope = side;
      return;
    }
    T power = z;  // z^(p−1)
    for (int64_t i = 2; i < p; ++i) power *= z;
    value = side * (power * z);
    slope = side * (static_cast<T>(p) * power);
  }

  void evaluate_member(int64_t s, Scratch<T>& scratch, StepStatistics& statistics) {
    const T* last = forward_hidden(s, scratch);
    const T* output_weights =
        learned_output_ ? layer(model_->weights()[shapes_.size() - 1], s, shapes_[hidden_ - 1][0])
                        : ones_.data();
    const auto index = static_cast<size_t>(s);
    statistics.loss[index] = output_and_loss(last, output_weights, scratch);
    backward_output(s, last, output_weights, scratch);
    backward_hidden(s, scratch);
    const auto [weight_norm2, gradient_norm2] = squared_norms(s);
    statistics.norm[index] = std::sqrt(weight_norm2);
    statistics.gradient_norm[index] = std::sqrt(gradient_norm2);
  }

  // Forward through the hidden layers: z_l[i, :] = Σ_c a_{l−1}[i, c]·W_lᵀ[c, :], then
  // a_l = σ(z_l) and σ'(z_l) in place. Returns a_{K−1} [n, k_{K−1}].
  const T* forward_hidden(int64_t s, Scratch<T>& scratch) const {
    const int64_t n = samples_;
    const T* previous = inputs_.template data_ptr<T>();
    for (size_t l = 0; l < hidden_; ++l) {
      const int64_t rows = shapes_[l][0];
      const int64_t cols = shapes_[l][1];
      const T* w = layer(model_->weights()[l], s, rows * cols);
      T* wt = scratch.transposed.data();
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t c = 0; c < cols; ++c) wt[c * rows + j] = w[j * cols + c];
      }
      T* a = scratch.activations[l].data();
      T* slope = scratch.slopes[l].data();
      for (int64_t i = 0; i < n; ++i) {
        T* z = a + i * rows;
        for (int64_t j = 0; j < rows; ++j) z[j] = 0;
        const T* in = previous + i * cols;
        for (int64_t c = 0; c < cols; ++c) {
          const T value = in[c];
          const T* column = wt + c * rows;
          for (int64_t j = 0; j < rows; ++j) z[j] += value * column[j];
        }
        T* sl = slope + i * rows;
        for (int64_t j = 0; j < rows; ++j) activate(z[j], z[j], sl[j]);
      }
      previous = a;
    }
    return previous;
  }

  // Output H_i = W_K·a_{K−1}[i, :] (W_K = ones for a single-layer model), the loss, and the
  // residual r_i = ∂ℓ/∂H_i into scratch.residual.
  double output_and_loss(const T* last, const T* output_weights, Scratch<T>& scratch) const {
    const int64_t n = samples_;
    const int64_t last_width = shapes_[hidden_ - 1][0];
    const T* y = labels_.template data_ptr<T>();
    T* r = scratch.residual.data();
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* a = last + i * last_width;
      T h = 0;
      for (int64_t j = 0; j < last_width; ++j) h += output_weights[j] * a[j];
      if (loss_ == LossKind::square) {
        const T e = h - y[i];
        loss += 0.5 * static_cast<double>(e) * static_cast<double>(e);
        r[i] = e;
      } else {
        // softplus(m) with m = −y·H, as torch::softplus (threshold 20); ∂ℓ/∂H = −y·sigmoid(m).
        const T m = -y[i] * h;
        loss += m > T(20) ? static_cast<double>(m) : std::log1p(std::exp(static_cast<double>(m)));
        r[i] = -y[i] * (T(1) / (T(1) + std::exp(-m)));
      }
    }
    return loss;
  }

  // ∇W_K = Σ_i r_i a_{K−1}[i, :] (a learned W_K only); δ_{K−1}[i, j] = r_i·W_K[j]·σ'(z_{K−1}[i,
  // j]).
  void backward_output(int64_t s, const T* last, const T* output_weights, Scratch<T>& scratch) {
    const int64_t n = samples_;
    const int64_t last_width = shapes_[hidden_ - 1][0];
    const T* r = scratch.residual.data();
    T* grad_last = learned_output_ ? layer(gradients_[shapes_.size() - 1], s, last_width) : nullptr;
    if (grad_last != nullptr) {
      for (int64_t j = 0; j < last_width; ++j) grad_last[j] = 0;
    }
    T* delta = scratch.deltas[hidden_ - 1].data();
    const T* last_slope = scratch.slopes[hidden_ - 1].data();
    for (int64_t i = 0; i < n; ++i) {
      const T* a = last + i * last_width;
      const T ri = r[i];
      T* d = delta + i * last_width;
      const T* sl = last_slope + i * last_width;
      if (grad_last != nullptr) {
        for (int64_t j = 0; j < last_width; ++j) grad_last[j] += ri * a[j];
      }
      for (int64_t j = 0; j < last_width; ++j) d[j] = ri * output_weights[j] * sl[j];
    }
  }

  // Hidden layers, last to first: ∇W_l[j, :] = Σ_i δ_l[i, j]·a_{l−1}[i, :], and
  // δ_{l−1}[i, :] = (Σ_j δ_l[i, j]·W_l[j, :]) ⊙ σ'(z_{l−1}[i, :]).
  void backward_hidden(int64_t s, Scratch<T>& scratch) {
    const int64_t n = samples_;
    const T* x = inputs_.template data_ptr<T>();
    for (size_t l = hidden_; l-- > 0;) {
      const int64_t rows = shapes_[l][0];
      const int64_t cols = shapes_[l][1];
      const T* w = layer(model_->weights()[l], s, rows * cols);
      T* grad = layer(gradients_[l], s, rows * cols);
      for (int64_t k = 0; k < rows * cols; ++k) grad[k] = 0;
      const T* below = l == 0 ? x : scratch.activations[l - 1].data();
      const T* d = scratch.deltas[l].data();
      T* next_delta = l == 0 ? nullptr : scratch.deltas[l - 1].data();
      for (int64_t i = 0; i < n; ++i) {
        const T* in = below + i * cols;
        const T* di = d + i * rows;
        T* nd = next_delta == nullptr ? nullptr : next_delta + i * cols;
        if (nd != nullptr) {
          for (int64_t c = 0; c < cols; ++c) nd[c] = 0;
        }
        for (int64_t j = 0; j < rows; ++j) {
          const T dij = di[j];
          if (dij == T(0)) continue;  // dead units (ReLU) contribute nothing
          T* g = grad + j * cols;
          for (int64_t c = 0; c < cols; ++c) g[c] += dij * in[c];
          if (nd != nullptr) {
            const T* wj = w + j * cols;
            for (int64_t c = 0; c < cols; ++c) nd[c] += dij * wj[c];
          }
        }
        if (nd != nullptr) {
          const T* sl = scratch.slopes[l - 1].data() + i * cols;
          for (int64_t c = 0; c < cols; ++c) nd[c] *= sl[c];
        }
      }
    }
  }

  // ‖w‖² and ‖∇ℓ‖² of member s, summed in float64.
  std::pair<double, double> squared_norms(int64_t s) const {
    double weight_norm2 = 0;
    double gradient_norm2 = 0;
    for (size_t l = 0; l < shapes_.size(); ++l) {
      const int64_t size = shapes_[l][0] * shapes_[l][1];
      const T* w = layer(model_->weights()[l], s, size);
      const T* g = layer(gradients_[l], s, size);
      for (int64_t k = 0; k < size; ++k) {
        weight_norm2 += static_cast<double>(w[k]) * static_cast<double>(w[k]);
        gradient_norm2 += static_cast<double>(g[k]) * static_cast<double>(g[k]);
      }
    }
    return {weight_norm2, gradient_norm2};
  }

  // Member s's block of a [S, …] tensor with `size` elements per member.
  static T* layer(const torch::Tensor& tensor, int64_t s, int64_t size) {
    return tensor.data_ptr<T>() + s * size;
  }

  FeedForward model_;
  torch::Tensor inputs_;
  torch::Tensor labels_;
  LossKind loss_;
  PolyLeakyReLUOptions activation_;
  std::vector<std::vector<int64_t>> shapes_;  // of the weight tensors (the parameters)
  size_t hidden_;                             // layers followed by σ
  bool learned_output_;                       // false: the output row is fixed to ones
  std::vector<T> ones_;                       // that fixed row, [k] (single-layer only)
  int64_t samples_ = 0;
  double negative_coefficient_ = 0;
  std::vector<Scratch<T>> scratch_;  // one per thread
};

}  // namespace

std::unique_ptr<TrainingEngine> make_fused_engine(FeedForward model, torch::Tensor inputs,
                                                  torch::Tensor labels, LossKind loss) {
  TORCH_CHECK(inputs.device().is_cpu(),
              "fused engine – runs on CPU only (use engine batched on CUDA) – got ",
              inputs.device());
  if (inputs.scalar_type() == torch::kFloat32) {
    return std::make_unique<FusedEngine<float>>(std::move(model), std::move(inputs),
                                                std::move(labels), loss);
  }
  TORCH_CHECK(inputs.scalar_type() == torch::kFloat64,
              "fused engine – float32 or float64 only – got ", inputs.scalar_type());
  return std::make_unique<FusedEngine<double>>(std::move(model), std::move(inputs),
                                               std::move(labels), loss);
}

}  // namespace ncflab

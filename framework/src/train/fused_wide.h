// The fused engine's BLAS path for wide nets with fewer members than threads (internal): one
// member's loss and gradient with the layer products as BLAS matrix products (at::mm_out into
// buffers kept between steps) on all cores, and everything between them (σ, σ', the loss, the
// deltas) in loops. Where a layer product is a million multiply-adds or more, a tuned GEMM on
// every core beats the fused loops, and the few ATen calls cost nothing next to it. With a
// member for every thread the kernels' own products run instead (fused_wide_path.h).
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "fused_kernels.h"

namespace ncflab::fused {

/// Whether `net` is wide enough for the BLAS path (fused_engine_uses_blas, engine.h).
template <typename T>
bool is_wide(const Net<T>& net);

template <typename T>
class WideMemberStep {
 public:
  explicit WideMemberStep(const Net<T>& net);
  /// ∇ℓ of member s into net.gradients; returns ℓ. Products by the BLAS on its own threads.
  double evaluate(const Net<T>& net, int64_t s);

 private:
  void activate(const torch::Tensor& z, torch::Tensor& value, torch::Tensor& slope) const;

  int64_t samples_;
  size_t hidden_;
  bool learned_output_;
  bool logistic_;
  int64_t p_;
  T negative_;
  std::vector<std::pair<int64_t, int64_t>> shapes_;   // rows, cols of each weight tensor
  torch::Tensor inputs_;                              // [n, d], the net's (not a copy)
  torch::Tensor labels_;                              // [n]
  std::vector<torch::Tensor> z_, a_, slope_, delta_;  // per hidden layer [k_l, n]
  torch::Tensor output_;                              // [1, n]
  torch::Tensor residual_;                            // [1, n]: ∂ℓ/∂H
};

extern template class WideMemberStep<double>;
extern template class WideMemberStep<float>;

}  // namespace ncflab::fused

// The fused kernels' code (internal), included by one translation unit per instruction set
// (fused_kernels_generic.cpp, _avx2.cpp, _avx512.cpp), each compiled with its own flags and
// -ffp-contract=off. Everything here has internal linkage, so no function compiled for a
// wider instruction set can stand in for the generic one at link time.
//
// Layouts. One member: fused_member_path.h; several members in the lanes of vectors:
// fused_lanes_path.h. For each member both do the same multiply-adds in the same order. Their
// shared terms: fused_kernel_terms.h; the SIMD primitives: fused_simd.h.
#pragma once

#include <optional>

#include "fused_kernels.h"
#include "fused_lanes_path.h"
#include "fused_member_path.h"
#include "fused_wide_path.h"

namespace ncflab::fused {
namespace {

/// The kernel for element type T and vector type V (lanes = sizeof(V) / sizeof(T)).
template <typename T, typename V>
class Kernel final : public MemberKernel<T> {
  static constexpr int kLanes = KernelTerms<T, V>::kLanes;

 public:
  // A wide net's kernel has only the wide path (whose scratch is large), others the two small
  // ones.
  explicit Kernel(const Net<T>& net) {
    if (net.wide) {
      wide_.emplace(net);
    } else {
      member_.emplace(net);
      lanes_.emplace(net);
    }
  }

  int lanes() const override { return wide_ ? 1 : kLanes; }

  void evaluate(const Net<T>& net, const int64_t* members, int count, MemberNumbers* out) override {
    if (wide_) {
      for (int m = 0; m < count; ++m) {
        out[m].loss = wide_->evaluate_member(net, members[m]);
        member_squared_norms(net, members[m], out[m]);
      }
      return;
    }
    if (count == 1) {
      out[0].loss = member_->evaluate_member(net, members[0]);
      member_squared_norms(net, members[0], out[0]);
      return;
    }
    int64_t group[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) group[lane] = members[lane < count ? lane : 0];
    MemberNumbers numbers[kLanes];
    lanes_->gather_weights(net, group);
    lanes_->evaluate_lanes(net, numbers);
    lanes_->write_gradients(net, group, count);
    for (int lane = 0; lane < count; ++lane) out[lane] = numbers[lane];
  }

  // A lone member's weights stay in net (its path reads them there); a group's stay in the
  // lanes, which saves the gather and scatter of every weight and gradient each step.
  void load_group(const Net<T>& net, const int64_t* members, int count) override {
    count_ = count;
    for (int lane = 0; lane < kLanes; ++lane) group_[lane] = members[lane < count ? lane : 0];
    if (count > 1) lanes_->gather_weights(net, group_);
  }

  void evaluate_group(const Net<T>& net, MemberNumbers* out) override {
    if (count_ == 1) {
      evaluate(net, group_, 1, out);
      return;
    }
    MemberNumbers numbers[kLanes];
    lanes_->evaluate_lanes(net, numbers);
    for (int lane = 0; lane < count_; ++lane) out[lane] = numbers[lane];
  }

  void update_group(const Net<T>& net, T eta, const uint8_t* running) override {
    if (count_ > 1) {
      lanes_->update_weights(eta, running, count_);
      return;
    }
    if (running[0]) member_update(net, group_[0], eta);
  }

  void store_group(const Net<T>& net) override {
    if (count_ == 1) return;
    lanes_->write_weights(net, group_, count_);
    lanes_->write_gradients(net, group_, count_);
  }

  int stages() const override { return wide_ ? wide_->stages() : 0; }
  int64_t pieces(int stage) const override { return wide_->pieces(stage); }
  void begin_stage(const Net<T>& net, int64_t member, int stage) override {
    wide_->begin_stage(net, member, stage);
  }
  void run_piece(const Net<T>& net, int64_t member, int stage, int64_t piece) override {
    wide_->run_piece(net, member, stage, piece);
  }
  double staged_loss() const override { return wide_->staged_loss(); }

 private:
  std::optional<MemberPath<T, V>> member_;
  std::optional<LanesPath<T, V>> lanes_;
  std::optional<WidePath<T, V>> wide_;
  int64_t group_[kLanes] = {};  // the loaded group (load_group)
  int count_ = 0;
};

}  // namespace
}  // namespace ncflab::fused

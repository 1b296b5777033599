// The fused kernels' code (internal), included by one translation unit per instruction set
// (fused_kernels_generic.cpp, _avx2.cpp, _avx512.cpp), each compiled with its own flags and
// -ffp-contract=off. Everything here has internal linkage, so no function compiled for a
// wider instruction set can stand in for the generic one at link time.
//
// Layouts. One member: fused_member_path.h; several members in the lanes of vectors:
// fused_lanes_path.h. For each member both do the same multiply-adds in the same order. Their
// shared terms: fused_kernel_terms.h; the SIMD primitives: fused_simd.h.
#pragma once

#include "fused_kernels.h"
#include "fused_lanes_path.h"
#include "fused_member_path.h"

namespace ncflab::fused {
namespace {

/// The kernel for element type T and vector type V (lanes = sizeof(V) / sizeof(T)).
template <typename T, typename V>
class Kernel final : public MemberKernel<T> {
  static constexpr int kLanes = KernelTerms<T, V>::kLanes;

 public:
  explicit Kernel(const Net<T>& net) : member_(net), lanes_(net) {}

  int lanes() const override { return kLanes; }

  void evaluate(const Net<T>& net, const int64_t* members, int count, MemberNumbers* out) override {
    if (count == 1) {
      out[0].loss = member_.evaluate_member(net, members[0]);
      member_squared_norms(net, members[0], out[0]);
      return;
    }
    int64_t group[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) group[lane] = members[lane < count ? lane : 0];
    MemberNumbers numbers[kLanes];
    lanes_.evaluate_lanes(net, group, numbers);
    lanes_.write_gradients(net, group, count);
    for (int lane = 0; lane < count; ++lane) out[lane] = numbers[lane];
  }

 private:
  MemberPath<T, V> member_;
  LanesPath<T, V> lanes_;
};

}  // namespace
}  // namespace ncflab::fused

// The arithmetic of the fused CPU engine (internal): the loss and gradient of one member,
// or of several at once in the lanes of SIMD registers, compiled once per instruction set
// (fused_kernels_generic.cpp, _avx2.cpp, _avx512.cpp) and chosen at start-up.
//
// Every path does the same operations in the same order on each member (products and sums
// as fused multiply-adds where the instruction set has them, plain ones where it does
// not), so a member's numbers depend neither on the path, nor on its lane, nor on the
// other members or the thread count; only on whether the CPU's kernels use FMA.
//
// The interface is plain data on purpose: code compiled for AVX2 or AVX-512 must not
// instantiate a template (std::vector, std::unique_ptr, ...) that generic code also
// instantiates, or the linker could hand the generic path the wider copy; nor include
// LibTorch, whose headers are full of such templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ncflab/core/cpu_isa.h"

namespace ncflab::fused {

/// What the kernels read and write: the data, the activation, and the weights and
/// gradients of every member, member-major ([S, rows, cols] per layer, contiguous).
template <typename T>
struct Net {
  int64_t samples = 0;
  const T* inputs = nullptr;  ///< [n, d]
  const T* labels = nullptr;  ///< [n]
  bool logistic = false;      ///< the logistic loss, else the square loss
  int64_t p = 1;
  double negative_coefficient = 0;  ///< σ(z) = c·z^p for z ≤ 0 (c = ±α)
  size_t layers = 0;                ///< weight tensors
  const int64_t* shapes = nullptr;  ///< [layers][2]: rows, cols of each
  size_t hidden = 0;                ///< layers followed by σ
  bool learned_output = true;       ///< false: the output row is fixed to ones
  T* const* weights = nullptr;      ///< [layers]: member 0's block of each
  T* const* gradients = nullptr;    ///< [layers]
};

/// One thread's kernel with its scratch, sized for the net it was made for.
template <typename T>
class MemberKernel {
 public:
  virtual ~MemberKernel();
  /// Members computed together in one interleaved pass.
  virtual int lanes() const = 0;
  /// ∇ℓ of members[0..count) into net.gradients and ℓ into losses[0..count), 1 ≤ count ≤
  /// lanes(). One member runs loops vectorised over units; several run interleaved.
  virtual void evaluate(const Net<T>& net, const int64_t* members, int count, double* losses) = 0;
};

// Its vtable and destructor live in fused_kernels.cpp (generic code) alone.
extern template class MemberKernel<double>;
extern template class MemberKernel<float>;

/// The kernel for `isa` (which must be available: cpu_isa_available).
template <typename T>
std::unique_ptr<MemberKernel<T>> make_member_kernel(CpuIsa isa, const Net<T>& net);

// Each instruction set's translation unit defines its own factory (raw pointers, see above).
MemberKernel<double>* new_generic_kernel(const Net<double>& net);
MemberKernel<float>* new_generic_kernel(const Net<float>& net);
MemberKernel<double>* new_avx2_kernel(const Net<double>& net);
MemberKernel<float>* new_avx2_kernel(const Net<float>& net);
MemberKernel<double>* new_avx512_kernel(const Net<double>& net);
MemberKernel<float>* new_avx512_kernel(const Net<float>& net);

}  // namespace ncflab::fused

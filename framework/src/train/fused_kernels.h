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
  bool wide = false;  ///< one member at a time with tiled matrix products (fused_wide_path.h)
  T* const* weights = nullptr;    ///< [layers]: member 0's block of each
  T* const* gradients = nullptr;  ///< [layers]
};

/// What one evaluation gives per member: ℓ, and ‖w‖² and ‖∇ℓ‖² summed in float64 layer by
/// layer, each layer's entries in order (every path sums in this order).
struct MemberNumbers {
  double loss = 0;
  double weight_norm2 = 0;
  double gradient_norm2 = 0;
};

namespace {

// ‖w‖² and ‖∇ℓ‖² of member s from its blocks in `net`, in MemberNumbers' order. Internal
// linkage, as the rule above asks: each instruction set's unit and the engine get their own.
template <typename T>
inline void member_squared_norms(const Net<T>& net, int64_t s, MemberNumbers& numbers) {
  double weight_norm2 = 0;
  double gradient_norm2 = 0;
  for (size_t l = 0; l < net.layers; ++l) {
    const int64_t size = net.shapes[2 * l] * net.shapes[2 * l + 1];
    const T* w = net.weights[l] + s * size;
    const T* g = net.gradients[l] + s * size;
    for (int64_t k = 0; k < size; ++k) {
      weight_norm2 += static_cast<double>(w[k]) * static_cast<double>(w[k]);
      gradient_norm2 += static_cast<double>(g[k]) * static_cast<double>(g[k]);
    }
  }
  numbers.weight_norm2 = weight_norm2;
  numbers.gradient_norm2 = gradient_norm2;
}

// w ← w − η·∇ℓ for member s: w − (η·g), a multiply then a subtraction (every unit that
// includes this is compiled without contraction), the batched engine's rounding of
// sub_(g * η).
template <typename T>
inline void member_update(const Net<T>& net, int64_t s, T eta) {
  for (size_t l = 0; l < net.layers; ++l) {
    const int64_t size = net.shapes[2 * l] * net.shapes[2 * l + 1];
    T* w = net.weights[l] + s * size;
    const T* g = net.gradients[l] + s * size;
    for (int64_t i = 0; i < size; ++i) w[i] -= eta * g[i];
  }
}

}  // namespace

/// One thread's kernel with its scratch, sized for the net it was made for.
template <typename T>
class MemberKernel {
 public:
  virtual ~MemberKernel();
  /// Members computed together in one interleaved pass.
  virtual int lanes() const = 0;
  /// ∇ℓ of members[0..count) into net.gradients and their numbers into out[0..count),
  /// 1 ≤ count ≤ lanes(). One member runs loops vectorised over units; several run
  /// interleaved.
  virtual void evaluate(const Net<T>& net, const int64_t* members, int count,
                        MemberNumbers* out) = 0;

  /// A group's steps with its members kept in the kernel between them (the engine's chunks
  /// of steps): load_group, then any number of evaluate_group and update_group, then
  /// store_group. The same numbers bit for bit as evaluate and the engine's update.
  /// Reads members[0..count) and their weights.
  virtual void load_group(const Net<T>& net, const int64_t* members, int count) = 0;
  /// evaluate() of the loaded members at their current weights (gradients kept inside).
  virtual void evaluate_group(const Net<T>& net, MemberNumbers* out) = 0;
  /// w ← w − η·∇ℓ for the loaded members with running[m] != 0 (m < count).
  virtual void update_group(const Net<T>& net, T eta, const uint8_t* running) = 0;
  /// The loaded members' weights and last gradients into net.weights and net.gradients.
  virtual void store_group(const Net<T>& net) = 0;

  /// A wide kernel's (Net::wide) evaluation of one member in stages, for an engine to spread
  /// one member over its threads: for each stage in order, begin_stage on one thread, then
  /// run_piece for each of the stage's pieces, on any threads in any order; then staged_loss.
  /// The same ℓ and gradient bit for bit as evaluate, however the pieces are shared out.
  /// A kernel that is not wide has no stages.
  virtual int stages() const = 0;
  virtual int64_t pieces(int stage) const = 0;
  virtual void begin_stage(const Net<T>& net, int64_t member, int stage) = 0;
  virtual void run_piece(const Net<T>& net, int64_t member, int stage, int64_t piece) = 0;
  virtual double staged_loss() const = 0;
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

// The fused kernels for the build's baseline instruction set (SSE2 on x86-64): 2 doubles per
// vector, no FMA.
#include "fused_kernels_impl.h"

namespace ncflab::fused {

MemberKernel<double>* new_generic_kernel(const Net<double>& net) {
  return new Kernel<double, VectorOf<double, 16>::type>(net);
}

MemberKernel<float>* new_generic_kernel(const Net<float>& net) {
  return new Kernel<float, VectorOf<float, 16>::type>(net);
}

}  // namespace ncflab::fused

// The fused kernels for AVX2 with FMA: 4 doubles (8 floats) per vector.
#if !defined(__AVX2__) || !defined(__FMA__)
#error "fused_kernels_avx2.cpp is compiled with -mavx2 -mfma (framework/CMakeLists.txt)"
#endif
#include "fused_kernels_impl.h"

namespace ncflab::fused {

MemberKernel<double>* new_avx2_kernel(const Net<double>& net) {
  return new Kernel<double, VectorOf<double, 32>::type>(net);
}

MemberKernel<float>* new_avx2_kernel(const Net<float>& net) {
  return new Kernel<float, VectorOf<float, 32>::type>(net);
}

}  // namespace ncflab::fused

// The fused kernels for AVX-512 with FMA: 8 doubles (16 floats) per vector.
#if !defined(__AVX512F__) || !defined(__FMA__)
#error \
    "fused_kernels_avx512.cpp is compiled with -mavx512f -mavx512dq -mavx512vl -mfma (framework/CMakeLists.txt)"
#endif
#include "fused_kernels_impl.h"

namespace ncflab::fused {

MemberKernel<double>* new_avx512_kernel(const Net<double>& net) {
  return new Kernel<double, VectorOf<double, 64>::type>(net);
}

MemberKernel<float>* new_avx512_kernel(const Net<float>& net) {
  return new Kernel<float, VectorOf<float, 64>::type>(net);
}

}  // namespace ncflab::fused

// The choice of fused kernel by instruction set.
#include "fused_kernels.h"

#include <c10/util/Exception.h>

namespace ncflab::fused {

template <typename T>
MemberKernel<T>::~MemberKernel() = default;

template <typename T>
std::unique_ptr<MemberKernel<T>> make_member_kernel(CpuIsa isa, const Net<T>& net) {
  TORCH_CHECK(cpu_isa_available(isa), "fused kernels – this CPU or build cannot run ",
              cpu_isa_name(isa));
  switch (isa) {
#ifdef NCFLAB_X86_KERNELS
    case CpuIsa::avx512:
      return std::unique_ptr<MemberKernel<T>>(new_avx512_kernel(net));
    case CpuIsa::avx2:
      return std::unique_ptr<MemberKernel<T>>(new_avx2_kernel(net));
#endif
    default:
      break;
  }
  return std::unique_ptr<MemberKernel<T>>(new_generic_kernel(net));
}

template class MemberKernel<double>;
template class MemberKernel<float>;
template std::unique_ptr<MemberKernel<double>> make_member_kernel(CpuIsa, const Net<double>&);
template std::unique_ptr<MemberKernel<float>> make_member_kernel(CpuIsa, const Net<float>&);

}  // namespace ncflab::fused

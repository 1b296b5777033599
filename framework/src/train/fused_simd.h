// SIMD primitives of the fused kernels (internal): multiply-add that is fused exactly where
// the instruction set has FMA, GCC/Clang vector types of 16, 32 or 64 bytes, and 64-byte
// aligned scratch. Included only by fused_kernel_terms.h (through fused_kernels_impl.h), so, like
// it, once per instruction set and with internal linkage.
#pragma once

#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__FMA__)
#include <immintrin.h>
#endif

namespace ncflab::fused {
namespace {

// ---- multiply-add: fused where the instruction set has FMA, else a product and a sum ----

inline double madd(double a, double b, double c) {
#if defined(__FMA__)
  return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}

inline float madd(float a, float b, float c) {
#if defined(__FMA__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

// ---- vectors of members ----

template <typename T, int Bytes>
struct VectorOf;
template <>
struct VectorOf<double, 16> {
  typedef double type __attribute__((vector_size(16)));
};
template <>
struct VectorOf<double, 32> {
  typedef double type __attribute__((vector_size(32)));
};
template <>
struct VectorOf<double, 64> {
  typedef double type __attribute__((vector_size(64)));
};
template <>
struct VectorOf<float, 16> {
  typedef float type __attribute__((vector_size(16)));
};
template <>
struct VectorOf<float, 32> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VectorOf<float, 64> {
  typedef float type __attribute__((vector_size(64)));
};

template <typename T, typename V>
inline V vector_madd(V a, V b, V c) {
#if defined(__FMA__)
  constexpr bool is_double = sizeof(T) == 8;
  if constexpr (sizeof(V) == 16) {
    if constexpr (is_double) {
      return (V)_mm_fmadd_pd((__m128d)a, (__m128d)b, (__m128d)c);
    } else {
      return (V)_mm_fmadd_ps((__m128)a, (__m128)b, (__m128)c);
    }
  } else if constexpr (sizeof(V) == 32) {
    if constexpr (is_double) {
      return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    } else {
      return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
    }
  } else {
#if defined(__AVX512F__)
    if constexpr (is_double) {
      return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
    } else {
      return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
    }
#else
    static_assert(sizeof(V) != 64, "512-bit vectors need -mavx512f");
#endif
  }
#else
  return a * b + c;
#endif
}

// 64-byte aligned, zeroed storage.
template <typename U>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t count) {
    const size_t bytes = ((count * sizeof(U) + 63) / 64) * 64;
    data_ = static_cast<U*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, bytes == 0 ? 64 : bytes);
  }
  Buffer(Buffer&& other) noexcept : data_(other.data_) { other.data_ = nullptr; }
  Buffer& operator=(Buffer&& other) noexcept {
    U* mine = data_;  // not std::swap: no template shared with generic code (file comment)
    data_ = other.data_;
    other.data_ = mine;
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }
  U* data() const { return data_; }

 private:
  U* data_ = nullptr;
};

}  // namespace
}  // namespace ncflab::fused

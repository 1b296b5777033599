# Warnings for ncflab's own targets only (never directory-wide flags).
function(ncflab_enable_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                             -Wno-unused-parameter)
    # GCC 12 warns falsely about std::string copies of literals in C++20 (its bugs 105329,
    # 105651 and, once inlined across a unity batch, 105746), the standard PyTorch 2.x's
    # LibTorch asks for.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE -Wno-stringop-overflow -Wno-restrict
                                             -Wno-array-bounds)
    endif()
  endif()
  target_compile_features(${target} PUBLIC cxx_std_17)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
endfunction()

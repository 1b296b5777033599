# Sanitizer and fuzzing builds (the `sanitize` preset): ASan/UBSan on ncflab's own code and
# libFuzzer targets for its input readers. LibTorch, yaml-cpp, fmt and GoogleTest stay as
# Debian built them (uninstrumented); only ncflab's targets get the flags.
#
#   NCFLAB_SANITIZE  e.g. "address,undefined": compiled into the library and, through its
#                    PUBLIC usage requirements, into everything linking it (ncflab, the
#                    tests, the fuzz targets). Any finding ends the process with an error.
#   NCFLAB_FUZZ      clang only: the library also gets libFuzzer's coverage instrumentation
#                    (-fsanitize=fuzzer-no-link) and tests/fuzz builds fuzz_config, fuzz_csv.

set(NCFLAB_SANITIZE "" CACHE STRING
    "Sanitizers for ncflab's own targets, as -fsanitize= takes them (e.g. address,undefined)")
option(NCFLAB_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)

if(NCFLAB_SANITIZE AND NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "ncflab: NCFLAB_SANITIZE needs GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
endif()
if(NCFLAB_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "ncflab: NCFLAB_FUZZ needs clang (libFuzzer), but the C++ compiler is "
    "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}. Use `cmake --preset sanitize` "
    "(Debian's clang-14 and libclang-rt-14-dev, which cmake/install-deps.sh installs) or "
    "-DCMAKE_CXX_COMPILER=clang++.")
endif()
if(NCFLAB_FUZZ AND NOT NCFLAB_BUILD_TESTS)
  message(FATAL_ERROR "ncflab: NCFLAB_FUZZ builds tests/fuzz, which needs NCFLAB_BUILD_TESTS=ON")
endif()

# Sanitizes `target` (ncflab_framework): PUBLIC, so what links the library is compiled and
# linked the same way and the sanitizer runtime comes in with the executables.
function(ncflab_enable_sanitizers target)
  if(NCFLAB_SANITIZE)
    set(flags "-fsanitize=${NCFLAB_SANITIZE}" -fno-omit-frame-pointer)
    # UBSan only prints and carries on by default: make its findings fail the test.
    if(NCFLAB_SANITIZE MATCHES "undefined")
      list(APPEND flags -fno-sanitize-recover=undefined)
    endif()
    target_compile_options(${target} PUBLIC ${flags})
    target_link_options(${target} PUBLIC ${flags})
  endif()
  if(NCFLAB_FUZZ)
    # Coverage for libFuzzer's guidance in the code it fuzzes (the fuzz targets link with
    # -fsanitize=fuzzer). Linked with it too: clang then brings the coverage hooks into
    # ncflab and the tests, with or without a sanitizer.
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
    target_link_options(${target} PUBLIC -fsanitize=fuzzer-no-link)
  endif()
endfunction()

# The environment of every test in the calling directory under NCFLAB_SANITIZE, appended to
# what the tests set already:
#  - halt_on_error, print_stacktrace: the first finding ends the test, with its stack.
#  - detect_leaks=1 (LeakSanitizer, ASan's default on Linux, named so that it stays on):
#    LibTorch's allocations that live until exit (operator registry, allocators, thread
#    pools) are reachable from its globals, so LeakSanitizer does not count them; every
#    GoogleTest suite, the executable and the fuzz targets exit without a report
#    (Debian's LibTorch 1.13, 2026-12). No suppressions file: neither ASan nor UBSan
#    reported anything inside LibTorch, yaml-cpp or GoogleTest, which are not instrumented.
#  - check_initialization_order, strict_string_checks: two checks ASan leaves off by default.
set(NCFLAB_SANITIZER_ENVIRONMENT
  "ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_string_checks=1"
  "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
function(ncflab_sanitizer_test_environment)
  if(NOT NCFLAB_SANITIZE)
    return()
  endif()
  get_property(tests DIRECTORY PROPERTY TESTS)
  if(tests)
    set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT ${NCFLAB_SANITIZER_ENVIRONMENT})
  endif()
endfunction()

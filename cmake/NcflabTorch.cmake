# Finds LibTorch: Debian's libtorch-dev (1.13, CPU) by default, or the one a PyTorch 2.x
# install carries, named as PyTorch documents it:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH="$(python -c 'import torch;print(torch.utils.cmake_prefix_path)')"
#
# TorchConfig.cmake looks for its libraries (libtorch.so, libc10.so, …) with find_library
# and PATHS, which CMake searches *after* the system directories: with Debian's
# libtorch-dev also installed, a PyTorch 2.x configuration silently linked Debian's
# libtorch.so 1.13 against 2.x headers. So when a TorchConfig.cmake is named on the
# prefix path, its own lib/ goes first, and the result is checked either way.
#
# Sets NCFLAB_TORCH_CUDA (LibTorch built with CUDA), NCFLAB_TORCH_VERSION and
# NCFLAB_FMT_TARGET (see below).

# Looked up afresh at every configure (find_file caches), and only on the prefix path:
# Torch_DIR, cached after the first configure, names Debian's config too.
unset(NCFLAB_TORCH_CONFIG CACHE)
find_file(NCFLAB_TORCH_CONFIG TorchConfig.cmake
          PATHS ${CMAKE_PREFIX_PATH} ENV CMAKE_PREFIX_PATH
          PATH_SUFFIXES . Torch share/cmake/Torch lib/cmake/Torch
          NO_DEFAULT_PATH)
if(NCFLAB_TORCH_CONFIG)
  get_filename_component(ncflab_torch_prefix "${NCFLAB_TORCH_CONFIG}/../../../.." ABSOLUTE)
  list(PREPEND CMAKE_LIBRARY_PATH "${ncflab_torch_prefix}/lib")
endif()

find_package(Torch REQUIRED)

if(NCFLAB_TORCH_CONFIG)
  get_filename_component(ncflab_torch_library_dir "${TORCH_LIBRARY}" DIRECTORY)
  get_filename_component(ncflab_torch_library_dir "${ncflab_torch_library_dir}" REALPATH)
  get_filename_component(ncflab_torch_expected_dir "${TORCH_INSTALL_PREFIX}/lib" REALPATH)
  if(NOT ncflab_torch_library_dir STREQUAL ncflab_torch_expected_dir)
    message(FATAL_ERROR
      "ncflab: the LibTorch in ${TORCH_INSTALL_PREFIX} found its library at ${TORCH_LIBRARY}: "
      "two LibTorch installs would be mixed. Delete the build folder's CMakeCache.txt and "
      "configure again.")
  endif()
endif()

# A wheel's CUDA libraries from PyPI (site-packages/nvidia/*/lib) are found at run time
# through libtorch_cuda.so's RPATH ($ORIGIN/../../nvidia/…), which the linker does not
# follow: it took the system's older libnccl.so.2 instead and failed. Name them for it.
file(GLOB ncflab_torch_wheel_libraries LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
if(ncflab_torch_wheel_libraries)
  list(JOIN ncflab_torch_wheel_libraries ":" ncflab_joined)
  add_link_options("LINKER:-rpath-link,${ncflab_joined}")
endif()

set(NCFLAB_TORCH_CUDA OFF)
if(CAFFE2_USE_CUDA)
  set(NCFLAB_TORCH_CUDA ON)
endif()
set(NCFLAB_TORCH_VERSION "${Torch_VERSION}")
message(STATUS "ncflab: LibTorch ${NCFLAB_TORCH_VERSION} from ${TORCH_INSTALL_PREFIX} "
               "(CUDA: ${NCFLAB_TORCH_CUDA})")

# PyPI's LibTorch ships fmt's headers (fmt 12 in torch 2.15) in its include folder, which
# comes before the system's: compiled against those headers, ncflab must not link the
# system's libfmt (fmt 9 on Debian 12, another ABI), so fmt is used header-only there.
# Debian's LibTorch shares /usr/include with libfmt-dev: that is the system's fmt, linked
# as a library (header-only fmt costs every translation unit ~9 s of compiling).
find_package(fmt REQUIRED)
get_target_property(_ncflab_fmt_include fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
file(REAL_PATH "${TORCH_INSTALL_PREFIX}/include" _ncflab_torch_include)
set(NCFLAB_FMT_TARGET fmt::fmt)
if(EXISTS "${_ncflab_torch_include}/fmt/format.h")
  set(NCFLAB_FMT_TARGET fmt::fmt-header-only)
  foreach(_dir IN LISTS _ncflab_fmt_include)
    file(REAL_PATH "${_dir}" _dir)
    if(_dir STREQUAL _ncflab_torch_include)
      set(NCFLAB_FMT_TARGET fmt::fmt)
    endif()
  endforeach()
endif()
message(STATUS "ncflab: fmt as ${NCFLAB_FMT_TARGET}")

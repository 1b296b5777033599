# Use ccache when it is installed, so rebuilds after a branch switch stay fast.
# The sloppiness settings let ccache cache translation units that use a PCH.
find_program(NCFLAB_CCACHE ccache)
if(NCFLAB_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;${NCFLAB_CCACHE}")
  message(STATUS "ncflab: compiling through ccache (${NCFLAB_CCACHE})")
endif()

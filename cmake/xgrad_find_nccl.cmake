# Finds NCCL (nccl.h, libnccl) in the CUDA toolkit first, then on the usual paths, and makes the
# imported target NCCL::NCCL. Used by xgrad's CMakeLists.txt and by its package config, so an
# installed xgrad::nccl finds the library the way the build did. Needs CUDAToolkit found.
if(NOT TARGET NCCL::NCCL)
  set(_xgrad_nccl_hints "")
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    list(APPEND _xgrad_nccl_hints "${_dir}")
  endforeach()
  find_path(XGRAD_NCCL_INCLUDE_DIR nccl.h
    HINTS ${_xgrad_nccl_hints} "${CUDAToolkit_LIBRARY_ROOT}/include" /usr/local/cuda/include
    DOC "Directory of nccl.h")
  find_library(XGRAD_NCCL_LIBRARY nccl
    HINTS ${CUDAToolkit_LIBRARY_DIR} "${CUDAToolkit_LIBRARY_ROOT}/lib64" /usr/local/cuda/lib64
    DOC "The NCCL library")
  mark_as_advanced(XGRAD_NCCL_INCLUDE_DIR XGRAD_NCCL_LIBRARY)
  if(XGRAD_NCCL_INCLUDE_DIR AND XGRAD_NCCL_LIBRARY)
    add_library(NCCL::NCCL UNKNOWN IMPORTED)
    set_target_properties(NCCL::NCCL PROPERTIES
      IMPORTED_LOCATION "${XGRAD_NCCL_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${XGRAD_NCCL_INCLUDE_DIR}")
  endif()
  unset(_xgrad_nccl_hints)
endif()

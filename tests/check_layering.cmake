# Fails when a header includes a header of a higher layer (the layers are listed in README.md,
# "Layers of the library"). Every `#include "..."` and `#include <xgrad/...>` of every .hpp
# under XGRAD_INCLUDE_DIR (the folder that holds xgrad/) is resolved to a file; its layer must
# not be higher than the including header's. No compiler runs: this is a text scan.
#
#   cmake -DXGRAD_INCLUDE_DIR=<repo>/include -P tests/check_layering.cmake
cmake_minimum_required(VERSION 3.20)

if(NOT XGRAD_INCLUDE_DIR)
  message(FATAL_ERROR "check_layering: pass -DXGRAD_INCLUDE_DIR=<folder holding xgrad/>")
endif()
cmake_path(ABSOLUTE_PATH XGRAD_INCLUDE_DIR NORMALIZE OUTPUT_VARIABLE _root)
set(_root "${_root}/xgrad")

# rank:path prefix under xgrad/; the longest matching prefix gives a header's layer, and a
# header may include only headers of its own layer or lower ones. Headers directly in xgrad/
# (xgrad.hpp, nn.hpp, device.hpp ...) gather layers and are above all of them.
set(_layers
  "0:core/" "0:detail/"                  # tensors, shapes, parameters, errors, SIMD math
  "1:io/"                                # file formats over core tensors
  "2:expr/"                              # expression nodes, the executor interface
  "3:backend/"                           # the CPU and Thrust engines, loops, GEMM
  "4:autodiff/"                          # eval(), backward(), gradient check
  "5:ops/" "5:backend/thrust/ops_"       # barrier ops and their device kernels
  "6:nn/"                                # layers
  "7:optim/"                             # optimizers
  "8:data/" "8:text/"                    # datasets, loaders, text pipelines
  "9:train/" "9:io/onnx.hpp"             # fit(), callbacks; whole-model import and export
  "10:distributed/")                     # multi-process training
set(_top_rank 11)

function(_layer_of rel out_rank out_name)
  if(NOT rel MATCHES "/")
    set(${out_rank} ${_top_rank} PARENT_SCOPE)
    set(${out_name} "top" PARENT_SCOPE)
    return()
  endif()
  set(_best_len -1)
  foreach(_entry IN LISTS _layers)
    string(REGEX MATCH "^([0-9]+):(.*)$" _m "${_entry}")
    set(_rank "${CMAKE_MATCH_1}")
    set(_prefix "${CMAKE_MATCH_2}")
    string(LENGTH "${_prefix}" _len)
    string(SUBSTRING "${rel}" 0 ${_len} _head)
    if(_head STREQUAL _prefix AND _len GREATER _best_len)
      set(_best_len ${_len})
      set(_best_rank ${_rank})
      set(_best_prefix "${_prefix}")
    endif()
  endforeach()
  if(_best_len LESS 0)
    message(FATAL_ERROR "check_layering: xgrad/${rel} is in no layer; add its folder to the table in "
                        "tests/check_layering.cmake and to README.md")
  endif()
  set(${out_rank} ${_best_rank} PARENT_SCOPE)
  set(${out_name} "${_best_prefix}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE _headers RELATIVE "${_root}" "${_root}/*.hpp")
list(SORT _headers)
list(LENGTH _headers _count)
if(_count EQUAL 0)
  message(FATAL_ERROR "check_layering: no headers under ${_root}")
endif()

set(_errors "")
foreach(_rel IN LISTS _headers)
  _layer_of("${_rel}" _rank _name)
  get_filename_component(_dir "${_root}/${_rel}" DIRECTORY)
  file(STRINGS "${_root}/${_rel}" _lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
  foreach(_line IN LISTS _lines)
    if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      cmake_path(ABSOLUTE_PATH CMAKE_MATCH_1 BASE_DIRECTORY "${_dir}" NORMALIZE OUTPUT_VARIABLE _target)
    elseif(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*<xgrad/([^>]+)>")
      set(_target "${_root}/${CMAKE_MATCH_1}")
    else()
      continue()  # a system or third-party header
    endif()
    file(RELATIVE_PATH _trel "${_root}" "${_target}")
    if(_trel MATCHES "^\\.\\./")
      continue()  # outside xgrad/
    endif()
    if(NOT EXISTS "${_target}")
      string(APPEND _errors "  xgrad/${_rel}: includes xgrad/${_trel}, which does not exist\n")
      continue()
    endif()
    _layer_of("${_trel}" _trank _tname)
    if(_trank GREATER _rank)
      string(APPEND _errors
        "  xgrad/${_rel} (layer ${_rank}, ${_name}) includes xgrad/${_trel} (layer ${_trank}, ${_tname})\n")
    endif()
  endforeach()
endforeach()

if(_errors)
  message(FATAL_ERROR "check_layering: includes that point to a higher layer:\n${_errors}")
endif()
message(STATUS "check_layering: ${_count} headers, no include points to a higher layer")

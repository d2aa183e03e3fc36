# Script mode (cmake -P): install a build tree into a fresh prefix.
# Used by the consumer tests; see tests/CMakeLists.txt.
#
#   cmake -DXGRAD_BUILD_DIR=<build tree> -DXGRAD_PREFIX=<prefix>
#         [-DXGRAD_CONFIG=<config>] -P xgrad_test_install.cmake
foreach(_var XGRAD_BUILD_DIR XGRAD_PREFIX)
  if(NOT ${_var})
    message(FATAL_ERROR "${_var} must be set")
  endif()
endforeach()

# Start from an empty prefix so files removed from the source tree do not
# linger and hide install-rule mistakes.
file(REMOVE_RECURSE "${XGRAD_PREFIX}")

set(_config_args)
if(XGRAD_CONFIG)
  set(_config_args --config "${XGRAD_CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${XGRAD_BUILD_DIR}" --prefix "${XGRAD_PREFIX}" ${_config_args}
  RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${_result})")
endif()

foreach(_file
    "include/xgrad/xgrad.hpp")
  if(NOT EXISTS "${XGRAD_PREFIX}/${_file}")
    message(FATAL_ERROR "expected installed file missing: ${XGRAD_PREFIX}/${_file}")
  endif()
endforeach()
file(GLOB_RECURSE _config_files "${XGRAD_PREFIX}/*/xgradConfig.cmake")
if(NOT _config_files)
  message(FATAL_ERROR "xgradConfig.cmake was not installed under ${XGRAD_PREFIX}")
endif()
message(STATUS "installed xgrad into ${XGRAD_PREFIX}")

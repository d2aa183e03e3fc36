# Runs COMMAND (a list) and passes when it fails (non-zero status) and its output matches the
# regular expression EXPECT: a distributed run that must end every rank with a clear error.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 100)
set(all "${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a failure, but the command succeeded:\n${all}")
endif()
if(NOT all MATCHES "${EXPECT}")
  message(FATAL_ERROR "the command failed (${rc}) without the expected message '${EXPECT}':\n${all}")
endif()
message(STATUS "failed as expected (${rc}): ${CMAKE_MATCH_0}")

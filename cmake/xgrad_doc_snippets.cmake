# Compile (and run) the C++ examples embedded in the Markdown documentation.
#
#   xgrad_add_doc_snippets(
#     DOCS_DIR <dir>                 # scanned for *.md (not recursive)
#     OUTPUT_DIR <dir>               # where the extracted .cpp files go
#     [WORKING_DIRECTORY <dir>]      # where the snippet tests run
#     [LINK_LIBRARIES <targets>...]
#     [GROUPS <n>]                   # snippets share n executables (default 0: one each)
#     [SEPARATE <name>...])          # snippets that keep their own executable anyway
#
# A snippet is a fenced block whose opening line is exactly ```cpp (no
# indentation, nothing after "cpp") and whose body contains "int main".  The
# block ends at the next line that starts with ```.  Other blocks (```cpp
# without a main(), ```bash, indented fences, ...) are ignored.
#
# The n-th snippet of docs/<page>.md becomes <OUTPUT_DIR>/<page>_<n>.cpp, an
# executable target doc_<page>_<n> and a ctest test of the same name with
# label "docs".  n counts snippets (blocks with a main) from 1.  Each
# generated file starts with a #line directive so compiler messages point at
# the Markdown page.  Every .md file is added to CMAKE_CONFIGURE_DEPENDS, so
# editing a page re-runs the extraction on the next build.
#
# Extraction runs at configure time in plain CMake.
#
# With GROUPS n > 0 the snippets (except SEPARATE ones) are compiled together into n
# executables doc_snippets_<g>: each snippet's code goes into its own namespace (its #include
# lines, moved to the top of the file, become blank lines so that the #line numbers hold), its
# main() becomes an ordinary function there, and the executable's main runs the one named by
# its first argument. The tests keep their names (doc_<page>_<n>). One translation unit then
# instantiates what the snippets share (tensors, layers, optimizers, the fused loops) once
# instead of once per snippet, which is most of a snippet's compile time.

# Write CONTENT to FILE only when it differs, so an unchanged snippet keeps
# its timestamp and is not recompiled after every re-configure.
function(_xgrad_write_if_different file content)
  if(EXISTS "${file}")
    file(READ "${file}" _old)
    if(_old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${file}" "${content}")
endfunction()

# Number of newline characters in TEXT, stored in OUT_VAR.
function(_xgrad_count_newlines out_var text)
  string(REGEX REPLACE "[^\n]" "" _newlines "${text}")
  string(LENGTH "${_newlines}" _count)
  set(${out_var} ${_count} PARENT_SCOPE)
endfunction()

# Extract the snippets of one Markdown page.  Sets OUT_COUNT to the number of
# snippets and, for n = 1..OUT_COUNT, <OUT_PREFIX>_<n>_body (the code) and
# <OUT_PREFIX>_<n>_line (line of the page where the code starts).
function(_xgrad_extract_snippets md_file out_count out_prefix)
  file(READ "${md_file}" _text)
  string(REPLACE "\r\n" "\n" _text "${_text}")
  # A leading newline lets the search pattern match a fence on line 1.
  # _rest always starts on line _line; the added newline is "line 0".
  set(_rest "\n${_text}")
  set(_line 0)
  set(_count 0)
  set(_open "\n```cpp\n")
  string(LENGTH "\n```cpp" _open_len)

  while(TRUE)
    string(FIND "${_rest}" "${_open}" _pos)
    if(_pos EQUAL -1)
      break()
    endif()
    # Line number of the opening fence.
    math(EXPR _prefix_len "${_pos} + 1")
    string(SUBSTRING "${_rest}" 0 ${_prefix_len} _prefix)
    _xgrad_count_newlines(_n "${_prefix}")
    math(EXPR _fence_line "${_line} + ${_n}")

    # _after starts with the newline that ends the opening fence line.
    math(EXPR _after_start "${_pos} + ${_open_len}")
    string(SUBSTRING "${_rest}" ${_after_start} -1 _after)
    string(FIND "${_after}" "\n```" _close)
    if(_close EQUAL -1)
      message(WARNING "${md_file}:${_fence_line}: unterminated ```cpp block; ignored")
      break()
    endif()
    if(_close EQUAL 0)
      set(_body "")
    else()
      math(EXPR _body_len "${_close} - 1")
      string(SUBSTRING "${_after}" 1 ${_body_len} _body)
    endif()

    string(FIND "${_body}" "int main" _has_main)
    if(NOT _has_main EQUAL -1)
      math(EXPR _count "${_count} + 1")
      math(EXPR _first_line "${_fence_line} + 1")
      set(${out_prefix}_${_count}_line ${_first_line} PARENT_SCOPE)
      set(${out_prefix}_${_count}_body "${_body}" PARENT_SCOPE)
    endif()

    # Continue on the closing fence line (which cannot open a ```cpp block).
    math(EXPR _keep "${_close} + 1")
    string(SUBSTRING "${_after}" 0 ${_keep} _consumed)
    _xgrad_count_newlines(_n "${_consumed}")
    math(EXPR _line "${_fence_line} + ${_n}")
    string(SUBSTRING "${_after}" ${_keep} -1 _rest)
  endwhile()
  set(${out_count} ${_count} PARENT_SCOPE)
endfunction()

# The code of snippet NAME for a grouped executable, in OUT_VAR: the body in namespace NAME
# with a #line directive pointing at the page, and its #include lines blanked (they are
# returned in <OUT_VAR>_includes, for the top of the file).
function(_xgrad_snippet_in_namespace out_var name body line md)
  string(REGEX MATCHALL "(^|\n)[ \t]*#[ \t]*include[^\n]*" _incs "${body}")
  string(REGEX REPLACE "(^|\n)[ \t]*#[ \t]*include[^\n]*" "\\1" _body "${body}")
  list(JOIN _incs "\n" _incs)
  set(${out_var} "namespace ${name} {\n#line ${line} \"${md}\"\n${_body}\n}  // namespace ${name}\n" PARENT_SCOPE)
  set(${out_var}_includes "${_incs}\n" PARENT_SCOPE)
endfunction()

function(xgrad_add_doc_snippets)
  cmake_parse_arguments(PARSE_ARGV 0 ARG "" "DOCS_DIR;OUTPUT_DIR;WORKING_DIRECTORY;GROUPS" "LINK_LIBRARIES;SEPARATE")
  if(NOT ARG_GROUPS)
    set(ARG_GROUPS 0)
  endif()
  if(NOT ARG_DOCS_DIR OR NOT ARG_OUTPUT_DIR)
    message(FATAL_ERROR "xgrad_add_doc_snippets: DOCS_DIR and OUTPUT_DIR are required")
  endif()
  if(NOT ARG_WORKING_DIRECTORY)
    set(ARG_WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}")
  endif()

  # CONFIGURE_DEPENDS: adding or removing a page re-runs CMake as well.
  file(GLOB _pages CONFIGURE_DEPENDS "${ARG_DOCS_DIR}/*.md")
  list(SORT _pages)
  file(MAKE_DIRECTORY "${ARG_OUTPUT_DIR}")

  set(_generated)
  set(_targets)
  set(_total 0)
  foreach(_md IN LISTS _pages)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_md}")
    get_filename_component(_page "${_md}" NAME_WE)
    string(REGEX REPLACE "[^A-Za-z0-9_]" "_" _page "${_page}")
    file(RELATIVE_PATH _md_rel "${PROJECT_SOURCE_DIR}" "${_md}")

    _xgrad_extract_snippets("${_md}" _n _snip)
    if(_n EQUAL 0)
      continue()
    endif()
    foreach(_i RANGE 1 ${_n})
      set(_name "doc_${_page}_${_i}")
      set(_cpp "${ARG_OUTPUT_DIR}/${_page}_${_i}.cpp")
      _xgrad_write_if_different("${_cpp}"
        "// Generated from ${_md_rel} (snippet ${_i}) at configure time; edit the Markdown page.\n#line ${_snip_${_i}_line} \"${_md}\"\n${_snip_${_i}_body}\n")
      list(APPEND _generated "${_cpp}")

      math(EXPR _total "${_total} + 1")
      if(ARG_GROUPS GREATER 0 AND NOT _name IN_LIST ARG_SEPARATE)
        # into group (k mod GROUPS), k counting the grouped snippets
        list(LENGTH _grouped _k)
        math(EXPR _g "${_k} % ${ARG_GROUPS}")
        list(APPEND _grouped ${_name})
        _xgrad_snippet_in_namespace(_code "${_name}" "${_snip_${_i}_body}" "${_snip_${_i}_line}" "${_md}")
        string(APPEND _group_${_g}_code "${_code}")
        string(APPEND _group_${_g}_includes "${_code_includes}")
        list(APPEND _group_${_g}_names ${_name})
        continue()
      endif()
      add_executable(${_name} "${_cpp}")
      target_link_libraries(${_name} PRIVATE ${ARG_LINK_LIBRARIES})
      add_test(NAME ${_name} COMMAND ${_name} WORKING_DIRECTORY "${ARG_WORKING_DIRECTORY}")
      set_tests_properties(${_name} PROPERTIES LABELS docs)
      list(APPEND _targets ${_name})
    endforeach()
  endforeach()

  # the grouped executables
  if(ARG_GROUPS GREATER 0)
    math(EXPR _last "${ARG_GROUPS} - 1")
    foreach(_g RANGE ${_last})
      if(NOT _group_${_g}_names)
        continue()
      endif()
      set(_exe "doc_snippets_${_g}")
      set(_cpp "${ARG_OUTPUT_DIR}/${_exe}.cpp")
      # the snippets' own includes first (each once), then their code, then the dispatcher
      string(REGEX MATCHALL "#include[^\n]*" _incs "${_group_${_g}_includes}")
      list(REMOVE_DUPLICATES _incs)
      list(JOIN _incs "\n" _incs)
      set(_dispatch "")
      foreach(_n IN LISTS _group_${_g}_names)
        string(APPEND _dispatch "    if (name == \"${_n}\") return xgrad_doc_snippets::call(&${_n}::main, argc - 1, argv + 1);\n")
      endforeach()
      _xgrad_write_if_different("${_cpp}"
"// Generated from the Markdown pages in ${ARG_DOCS_DIR} at configure time; edit the pages.
${_incs}
#include <cstdio>
#include <string>
#include <type_traits>
${_group_${_g}_code}
#line 1 \"${_cpp}.dispatch\"
namespace xgrad_doc_snippets {
template <class F>
int call(F f, int argc, char** argv) {
    if constexpr (std::is_invocable_v<F, int, char**>)
        return f(argc, argv);
    else
        return f();
}
}  // namespace xgrad_doc_snippets

int main(int argc, char** argv) {
    const std::string name = argc > 1 ? argv[1] : \"\";
${_dispatch}    std::fprintf(stderr, \"usage: %s <snippet>, one of: ${_group_${_g}_names}\\n\", argv[0]);
    return 2;
}
")
      list(APPEND _generated "${_cpp}")
      add_executable(${_exe} "${_cpp}")
      target_link_libraries(${_exe} PRIVATE ${ARG_LINK_LIBRARIES})
      list(APPEND _targets ${_exe})
      foreach(_n IN LISTS _group_${_g}_names)
        add_test(NAME ${_n} COMMAND ${_exe} ${_n} WORKING_DIRECTORY "${ARG_WORKING_DIRECTORY}")
        set_tests_properties(${_n} PROPERTIES LABELS docs)
      endforeach()
    endforeach()
  endif()

  # A precompiled header pays for itself only over many translation units (building it costs
  # about four times what it saves in each).
  list(LENGTH _targets _ntargets)
  if(_ntargets GREATER 4 AND COMMAND xgrad_use_test_pch)
    xgrad_use_test_pch(${_targets})
  endif()

  # Drop files of snippets that no longer exist.
  file(GLOB _existing "${ARG_OUTPUT_DIR}/*.cpp")
  foreach(_old IN LISTS _existing)
    if(NOT _old IN_LIST _generated)
      file(REMOVE "${_old}")
    endif()
  endforeach()

  list(LENGTH _pages _npages)
  message(STATUS "xgrad: ${_total} documentation snippet test(s) from ${_npages} page(s) in ${ARG_DOCS_DIR}")
endfunction()

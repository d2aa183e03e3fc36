// Owns the precompiled <xgrad/xgrad.hpp> that the unit tests reuse (tests/CMakeLists.txt): an
// empty translation unit, so that no test waits for another test to build first.

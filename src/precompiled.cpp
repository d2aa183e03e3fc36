// xgrad_precompiled: the optional compiled part of the header-only library. It holds the one
// copy of every function marked XGRAD_OUTLINE (core/config.hpp); a program that links it and
// defines XGRAD_PRECOMPILED (CMake does both) spends no code generation on those functions in
// its own translation units. Compile it with the program's own flags (-march, -O).
#define XGRAD_PRECOMPILED_BUILD
#include <xgrad/text.hpp>
#include <xgrad/xgrad.hpp>

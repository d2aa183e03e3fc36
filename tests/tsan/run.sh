#!/usr/bin/env bash
# Builds the loader test with ThreadSanitizer and runs it (several times, since races
# depend on timing). Fails on any ThreadSanitizer report, a failed check, or a hang.
#   usage: tests/tsan/run.sh [REPEATS]   (default 5)
set -euo pipefail
repeats=${1:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/xgrad-tsan.XXXXXX)
trap 'rm -rf "$work"' EXIT

for name in test_data_loader test_thread_pool; do
exe="$work/$name"
g++ -std=c++20 -O1 -g -fsanitize=thread -DBOOST_TEST_DYN_LINK -I "$root/include" \
    "$root/tests/$name.cpp" -lboost_unit_test_framework -lz -pthread -o "$exe"

for i in $(seq 1 "$repeats"); do
    log="$work/run$i.log"
    # halt_on_error: the first report ends the run with exit code 66
    if ! TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
        timeout 300 "$exe" > "$log" 2>&1 || grep -q "ThreadSanitizer" "$log"; then
        echo "tsan run $i FAILED"
        cat "$log"
        exit 1
    fi
done
echo "tsan: $repeats clean runs of $name"
done

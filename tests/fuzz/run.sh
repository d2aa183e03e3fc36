#!/usr/bin/env bash
# Builds one libFuzzer target per reader (ASan + UBSan) and runs each for SECONDS
# from a small seed corpus written here, JOBS targets at a time (default: the core count).
# Exits non-zero on any crash, leak or sanitizer report.
#   usage: tests/fuzz/run.sh [SECONDS]   (default 30)
set -euo pipefail
secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${XGRAD_FUZZ_WORK:-$(mktemp -d /tmp/xgrad-fuzz.XXXXXX)}
mkdir -p "$work"

# clang and its fuzzer runtime, installed only when missing
if ! command -v clang++ >/dev/null 2>&1 || [ ! -f "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y clang libclang-rt-14-dev
fi

# --- seed corpora ---------------------------------------------------------------
seeds() { mkdir -p "$work/corpus/$1"; echo "$work/corpus/$1"; }
c=$(seeds idx)
# {2, 2, 2} uint8 images; {3} labels; a float32 {1}; the images gzipped; a truncated file
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' > "$c/images"
printf '\x00\x00\x08\x01\x00\x00\x00\x03\x09\x00\x05' > "$c/labels"
printf '\x00\x00\x0d\x01\x00\x00\x00\x01\x3f\xc0\x00\x00' > "$c/float"
gzip -9 -c "$c/images" > "$c/images.gz"
head -c 13 "$c/images" > "$c/truncated"
c=$(seeds cifar10)
{ printf '\x03'; head -c 3072 /dev/zero | tr '\0' '\x80'; printf '\x09'; head -c 3072 /dev/zero; } > "$c/two_records"
head -c 100 "$c/two_records" > "$c/truncated"
c=$(seeds csv)
printf ',a,b,label\n1,2.5,3\n4,"5",0\n' > "$c/header"
printf ';1;2;3\r\n4;5;6\r\n' > "$c/semicolon"
printf '\x40"x,1","y""q",label\n1,2,3\n' > "$c/quoted"
printf '\x01\t1\t2\n\n3\t4\n' > "$c/tabs"
c=$(seeds npy)
hdr="{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
pad=$(printf '%*s' $((64 - (10 + ${#hdr} + 1) % 64)) '')
{ printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( ${#hdr} + ${#pad} + 1 )))\\x00"; printf '%s%s\n' "$hdr" "$pad";
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40'; } > "$c/float32"
hdr="{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1), }"
pad=$(printf '%*s' $((64 - (10 + ${#hdr} + 1) % 64)) '')
{ printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( ${#hdr} + ${#pad} + 1 )))\\x00"; printf '%s%s\n' "$hdr" "$pad";
  printf '\x01\x02\x03'; } > "$c/uint8"

c=$(seeds safetensors)
# 8-byte little-endian header length, JSON header, data
st() { local n=${#1}; printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))\\x00\\x00\\x00\\x00\\x00\\x00%s" "$1"; }
{ st '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40'; } > "$c/f32"
{ st '{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[12,14]},"m":{"dtype":"BOOL","shape":[2],"data_offsets":[14,16]},"e":{"dtype":"I32","shape":[0,3],"data_offsets":[16,16]}}'
  printf '\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x3c\x01\x7c\x80\x3f\x01\x00'; } > "$c/mixed"
{ st '{ "\u00e9\ud83d\ude00" : {"dtype":"I8","shape":[],"data_offsets":[0,1]} }   '; printf '\xff'; } > "$c/unicode"

c=$(seeds text)
# byte 0 picks the reader: 0 ARFF, 1 CSV text columns, 2 bzip2
{ printf '\x00'; printf "@relation r\n@attribute t string\n@attribute n numeric\n@attribute c {a,'b c'}\n@data\n'x\\n\\'y',1.5,a\n\"z\",?,'b c'\n"; } > "$c/arff"
{ printf '\x19'; printf 'text,label\n"a, b",pos\nc,neg\n'; } > "$c/csv"
{ printf '\x02'; python3 -c "import bz2, sys; sys.stdout.buffer.write(bz2.compress(b'hello hello hello text'))"; } > "$c/bz2"

# --- build and run (JOBS targets at a time, default: the core count) ------------------
fuzz_one() {
    local target=$1 exe="$work/fuzz_$1"
    mkdir -p "$work/artifacts"
    if ! clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I "$root/include" "$root/tests/fuzz/fuzz_$target.cpp" -lz -lbz2 -o "$exe" > "$work/$target.build.log" 2>&1; then
        echo "fuzz_$target: build FAILED"
        cat "$work/$target.build.log"
        return 1
    fi
    if ! "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$target-" "$work/corpus/$target" > "$work/$target.log" 2>&1; then
        echo "fuzz_$target FAILED (log: $work/$target.log, artifacts: $work/artifacts)"
        tail -n 40 "$work/$target.log"
        return 1
    fi
    echo "== fuzz_$target: ${secs}s"
    grep -E 'stat::number_of_executed_units|cov:' "$work/$target.log" | tail -n 2
}
export -f fuzz_one
export work root secs
status=0
printf '%s\n' idx cifar10 csv npy safetensors text |
    xargs -P "${JOBS:-$(nproc)}" -I{} bash -c 'fuzz_one {} > "$work/{}.summary" 2>&1; echo $? > "$work/{}.status"' || true
for target in idx cifar10 csv npy safetensors text; do
    cat "$work/$target.summary"
    [ "$(cat "$work/$target.status" 2>/dev/null)" = 0 ] || status=1
done
[ "$status" -eq 0 ] && [ -z "${XGRAD_FUZZ_WORK:-}" ] && rm -rf "$work"
exit "$status"

#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (-fsanitize=fuzzer,address,undefined), seeds a corpus from the test
# fixtures and runs each harness for SECONDS (default 60). Exits non-zero if a harness crashes or breaks its
# contract; the crashing input is left in the build dir (crash-*) for a regression test.
#
#   scripts/fuzz.sh [SECONDS] [BUILD_DIR]        env: CC (default clang), FUZZ_JOBS (parallel workers, default 1)
#
# The corpus grows in tests/fuzz/corpus-<harness>/ (git-ignored) and is reused by later runs.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${2:-$root/build-fuzz}")
cc=${CC:-clang}
jobs=${FUZZ_JOBS:-1}
harnesses=(fuzz_checkpoint fuzz_npz fuzz_image fuzz_options)

mkdir -p "$build"
# The top-level build when the whole project configures; otherwise the harness directory on its own.
if ! cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARGEN_FUZZ=ON \
    -DARGEN_TESTS=OFF -DARGEN_CUDA=OFF >"$build/configure.log" 2>&1; then
  echo "fuzz.sh: top-level configure failed (see $build/configure.log); configuring tests/fuzz alone"
  rm -rf "$build"
  mkdir -p "$build"
  cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
fi
cmake --build "$build" --target "${harnesses[@]}" -j "$(nproc)" >"$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log"; exit 1; }

# Seeds (seeds-<harness>): the fixtures, whole when small; big ones cut to their first and last 16 KiB (keeps the zip
# directory and the safetensors/pickle headers, which is where the parsing is). The npz harness gets the .npz files
# only: tests/fixtures/npz.tar.xz holds small numpy-written ones of every layout (scripts/make_npz_fixtures.py).
rm -rf "$build"/seeds-* "$build/fixtures"
mkdir -p "$build/seeds-checkpoint" "$build/seeds-npz" "$build/seeds-image" "$build/fixtures"
for a in "$root"/tests/fixtures/*.tar.xz; do tar xJf "$a" -C "$build/fixtures"; done
find "$build/fixtures" -type f \( -name '*.pth' -o -name '*.pt' -o -name '*.safetensors' -o -name '*.npz' \) |
  sort | while read -r f; do
    name=$(echo "${f#"$build/fixtures/"}" | tr '/' '_')
    out="$build/seeds-checkpoint/$name"
    if [ "$(stat -c %s "$f")" -le 65536 ]; then
      cp "$f" "$out"
    else
      { head -c 16384 "$f"; tail -c 16384 "$f"; } >"$out"
    fi
    case "$f" in *.npz) cp "$out" "$build/seeds-npz/$name" ;; esac
  done

# Images: small PNGs of every colour type, bit depth and interlacing, and JPEGs (scripts/make_image_seeds.py).
python3 "$root/scripts/make_image_seeds.py" "$build/seeds-image"

# Command lines: NUL-separated argv tokens, a few of each kind of option and syntax.
mkdir -p "$build/seeds-options"
i=0
for line in "--class 1,4-6,10 --cfg 4 -q a.png" "-k5 -s=3 --top-p=0.5 -- --not-an-option" "--device cuda -o out x y" \
  "--patch-nums 1,2,3,4,5,6,8,10,13,16 --scales 0.5,1,2.5 --steps 100" "--format jpg --json -qo dir" \
  "--help" "--top-k -3" "--cfg nan" "--tokn 3" "--class 999-0" "--seed 9223372036854775807 -" "--out"; do
  printf '%s' "$line" | tr ' ' '\0' >"$build/seeds-options/$i"
  i=$((i + 1))
done
cp "$root"/tests/fuzz/regressions/options-* "$build/seeds-options/"  # command lines that once failed

# Tokens the formats are made of, so mutations can splice them in.
cat >"$build/checkpoint.dict" <<'EOF'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"PK\x06\x06"
"PK\x06\x07"
"\x01\x00\x18\x00"
"data.pkl"
"archive/data/"
"byteorder"
"little"
"ccollections\x0aOrderedDict\x0a"
"ctorch._utils\x0a_rebuild_tensor_v2\x0a"
"ctorch._utils\x0a_rebuild_parameter\x0a"
"ctorch\x0aFloatStorage\x0a"
"ctorch\x0aHalfStorage\x0a"
"ctorch\x0aLongStorage\x0a"
"X\x07\x00\x00\x00storage"
"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
"\x80\x02M\xe9\x03."
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"BF16\""
"\"I64\""
EOF
cat >"$build/npz.dict" <<'EOF'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"PK\x06\x06"
"PK\x06\x07"
"PK\x07\x08"
"\x01\x00\x10\x00"
".npy"
"\x93NUMPY\x01\x00"
"\x93NUMPY\x02\x00"
"'descr': "
"'fortran_order': False"
"'fortran_order': True"
"'shape': ("
", "
",)"
"'|u1'"
"'<f8'"
"'>f4'"
"'=i8'"
"'<i4'"
"L, "
EOF

cat >"$build/image.dict" <<'EOF'
"\x89PNG\x0d\x0a\x1a\x0a"
"IHDR"
"IDAT"
"IEND"
"PLTE"
"tRNS"
"tEXt"
"zTXt"
"iCCP"
"sBIT"
"gAMA"
"\xff\xd8\xff"
"\xff\xc0"
"\xff\xc2"
"\xff\xc4"
"\xff\xdb"
"\xff\xda"
"\xff\xdd"
"\xff\xd9"
"\xff\xe0"
EOF

cat >"$build/options.dict" <<'EOF2'
"--"
"--class"
"--cfg"
"--top-k"
"--top-p"
"--seed"
"--steps"
"--device"
"--format"
"--out"
"--patch-nums"
"--scales"
"--quiet"
"--json"
"--help"
"="
","
"-"
"\x00"
"cuda"
"jpg"
"1e38"
"inf"
"nan"
"0x10"
"2147483648"
"-9223372036854775809"
EOF2

parallel=()  # independent workers sharing the corpus dir; each logs to $build/fuzz-<n>.log
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
status=0
for h in "${harnesses[@]}"; do
  corpus="$root/tests/fuzz/corpus-${h#fuzz_}"
  mkdir -p "$corpus"
  echo "fuzz.sh: running $h for ${secs}s (corpus $corpus)"
  exe="$build/tests/fuzz/$h"  # top-level build layout
  [ -x "$exe" ] || exe="$build/$h"
  rc=0
  rm -f "$build"/fuzz-*.log
  (cd "$build" && "$exe" "$corpus" "$build/seeds-${h#fuzz_}" -dict="$build/${h#fuzz_}.dict" \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    "${parallel[@]}" >"$build/$h.log" 2>&1) || rc=$?
  logs=("$build/$h.log")
  for l in "$build"/fuzz-*.log; do [ -e "$l" ] && logs+=("$l"); done
  runs=$(grep -h "^stat::number_of_executed_units" "${logs[@]}" | awk '{n += $2} END {print n + 0}')
  grep -hE "^#[0-9]+ +DONE|^stat::peak_rss" "${logs[@]}" | tail -4 || true
  echo "fuzz.sh: $h: $runs executions in ${secs}s x $jobs worker(s)"
  if [ "$rc" -ne 0 ] || grep -qE "ERROR: |SUMMARY: |contract violated|runtime error" "${logs[@]}"; then
    echo "fuzz.sh: $h FAILED (exit $rc); see ${logs[*]} and the crash-*/timeout-*/oom-* input in $build" >&2
    grep -hE "ERROR: |contract violated|runtime error|^    #[0-9] " "${logs[@]}" | head -20 >&2 || true
    status=1
  else
    echo "fuzz.sh: $h ok"
  fi
done
exit $status

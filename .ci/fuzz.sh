#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (with AddressSanitizer) and runs each on its seed corpus
# for a bounded time; exits non-zero when any target crashes, leaks, times out or runs out of
# memory, after printing the input that did it.
#
#   .ci/fuzz.sh                          # every target, 60 s each
#   .ci/fuzz.sh websocket handshake      # some targets
#   FUZZ_SECONDS=600 .ci/fuzz.sh json-body
#   .ci/fuzz.sh --build-only
#
# New inputs that reach new code go to Fuzz/.build/fuzz/<target>/corpus (not into the repo);
# crashing inputs to Fuzz/.build/fuzz/<target>/ as crash-*, leak-*, timeout-* or oom-*. Replay one
# with `SWIFT_BACKTRACE=enable=no Fuzz/.build/debug/fuzz-<target> <file>`; each target's header
# comment says how it reads its input. Add a seed: Fuzz/make-corpus.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all=(handshake websocket uri-template json-body)
seconds=${FUZZ_SECONDS:-60}
build_only=false
targets=()
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=true ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) [[ " ${all[*]} " == *" $arg "* ]] || { echo "fuzz.sh: unknown target '$arg' (targets: ${all[*]})" >&2; exit 2; }
       targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# -sanitize=fuzzer instruments our code and NIO's Swift code for coverage and links libFuzzer
# (Fuzz/Sources/CLibFuzzer starts its driver); -sanitize=address adds AddressSanitizer. The C parts
# of the dependencies (NIO's llhttp among them) get both through -Xcc. The debug configuration
# compiles every module with testing enabled, which the targets' `@testable import StarServer`
# needs; -O on top makes the targets 5-10x faster per input (the build takes ~6 min instead of ~2.5).
flags=(-c debug -Xswiftc -O -Xswiftc -sanitize=fuzzer,address
       -Xcc -fsanitize=fuzzer-no-link,address)
start=$(date +%s)
echo "fuzz.sh: building ${targets[*]}"
set +e
swift build --package-path Fuzz "${flags[@]}" 2>&1 \
  | grep -Ev '^\[[0-9]+/[0-9]+\]|^Compiling|^Write|^Fetching|^Computing|^Creating|^Working copy|^Cloning|^Resolving|^Fetched|^Cloned|Cannot export local symbol'
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "fuzz.sh: build failed (exit $status)"; exit "$status"; }
bin=$(swift build --package-path Fuzz "${flags[@]}" --show-bin-path)
echo "fuzz.sh: built in $(( $(date +%s) - start ))s"
$build_only && exit 0

# Swift's crash backtracer reads the crashed process's memory from a helper thread, which ASan
# reports as an error of its own (and the helper can outlive the target); libFuzzer's handler
# prints the stack (symbolized, with Swift names mangled) and the Swift runtime the message.
export SWIFT_BACKTRACE=enable=no
failed=()
for target in "${targets[@]}"; do
  work=Fuzz/.build/fuzz/$target
  mkdir -p "$work/corpus"
  dict=()
  [ -f "Fuzz/Dictionaries/$target.dict" ] && dict=(-dict="Fuzz/Dictionaries/$target.dict")
  echo
  echo "--- fuzz-$target for ${seconds}s"
  log=$work/log.txt
  set +e
  # The first corpus folder receives new inputs; the repo's seeds are only read. Inputs up to
  # 16 KiB: room for fragmented and compressed messages past the 1 KiB and 125-byte limits.
  "$bin/fuzz-$target" "$work/corpus" "Fuzz/Corpus/$target" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$work/" >"$log" 2>&1
  status=$?
  set -e
  # The last status line (#runs cov: ft: corp: exec/s) and the final statistics.
  grep -E '^#[0-9]+' "$log" | tail -1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | tr '\n' ' ' || true
  echo
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz.sh: fuzz-$target FAILED (exit $status) (whole output: $log):"
    # The error and the stack without libFuzzer's own frames, Swift names demangled.
    grep -E 'Fatal error|ERROR:|SUMMARY:|runtime failure|^ *#[0-9]+ ' "$log" | grep -v '/compiler-rt/' | head -40 \
      | { swift demangle --simplified 2>/dev/null || cat; }
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //')
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
      echo "fuzz.sh: crashing input: $artifact ($(wc -c <"$artifact") bytes; replay: $bin/fuzz-$target $artifact)"
      echo "fuzz.sh: base64: $(head -c 4096 "$artifact" | base64 -w0)"
    fi
  fi
done

echo
echo "fuzz.sh: ${#targets[@]} targets in $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failures in: ${failed[*]}"
  exit 1
fi

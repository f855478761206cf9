#!/usr/bin/env bash
# Builds the DocC documentation of every library product that has a catalog (StarWebSocketEngine,
# whose API is `package`, has none) with the swift-docc-plugin, into a scratch folder, and fails on
# any documentation warning: docc runs with --warnings-as-errors, so a symbol link that does not
# resolve (in a catalog or in a doc comment), a topic that names nothing, or a malformed directive
# makes `docc convert` exit non-zero, and the plugin with it.
#
#   .ci/docs.sh              # archives in a new folder under /tmp, removed at the end
#   .ci/docs.sh OUTPUT_DIR   # archives kept in OUTPUT_DIR/<Target>.doccarchive
#   swift package --disable-sandbox preview-documentation --target Star   # to read them locally
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=(Star StarWebSocket StarWebSocketClient StarTesting StarServer StarBroadcast StarFiles)

grep -q 'swift-docc-plugin' Package.swift || {
  echo "docs: Package.swift does not depend on https://github.com/swiftlang/swift-docc-plugin" >&2
  exit 1
}
for target in "${targets[@]}"; do
  [ -f "Sources/$target/$target.docc/$target.md" ] || { echo "docs: no catalog Sources/$target/$target.docc" >&2; exit 1; }
done

if [ $# -ge 1 ]; then
  out=$1
  mkdir -p "$out"
  keep=true
else
  out=$(mktemp -d /tmp/star-docs.XXXXXX)
  keep=false
fi
log=$(mktemp /tmp/star-docs-log.XXXXXX)
cleanup() { rm -f "$log"; if [ "$keep" = false ]; then rm -rf "$out"; fi; }
trap cleanup EXIT

# One plugin run per target, so that one target's warnings do not hide the next one's.
# --disable-sandbox: the plugin runs `docc` and writes outside the package (Linux has no plugin
# sandbox, macOS does). Everything after `generate-documentation` that the plugin does not know
# (--warnings-as-errors) is passed on to `docc convert`.
failed=()
for target in "${targets[@]}"; do
  echo "--- $target"
  set +e
  swift package --disable-sandbox --allow-writing-to-directory "$out" \
    generate-documentation --target "$target" --output-path "$out/$target.doccarchive" --warnings-as-errors >"$log" 2>&1
  status=$?
  set -e
  # The compiler's progress lines are noise; diagnostics and the plugin's summary stay.
  grep -Ev '^\[[0-9]+/[0-9]+\]|^Compiling|^Write |^Building for|^Fetching|^Computing|^Creating|^Working copy' "$log" || true
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
  # Belt and braces: a docc diagnostic that stayed a warning fails too. docc prints the source
  # location under each diagnostic (` --> File.md:3:5`); compiler warnings from building the
  # target are not docc's and do not count here (the build step owns them).
  elif grep -E '^warning: ' -A1 "$log" | grep -Eq '^ *--> '; then
    failed+=("$target")
  elif [ ! -d "$out/$target.doccarchive" ]; then
    echo "docs: no archive for $target" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "docs: documentation warnings or errors in ${failed[*]} (above)" >&2
  exit 1
fi
echo "docs: ${#targets[@]} archives built with no warnings (${targets[*]})"

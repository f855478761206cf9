#!/usr/bin/env bash
# Builds every Swift block of the README in a scratch package that depends on this checkout by
# path (.ci/snippets.py says how each block is placed: the "Add Star" package's manifest and files,
# test blocks into its test target, every other block an executable target), then runs its tests:
# the README's "Add Star" package builds and its test passes, and no snippet can rot.
#
#   .ci/snippets.sh            # scratch package in .build-snippets/ (kept: a rerun is incremental)
#   .ci/snippets.sh --docc     # also the DocC articles' blocks (Sources/*/*.docc/*.md)
# Env: STAR_SNIPPETS_DIR  the scratch folder (default .build-snippets)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
dir=${STAR_SNIPPETS_DIR:-$root/.build-snippets}
mkdir -p "$dir/deps"
# The dependency's identity is its folder's name: the manifest names Star's products `package: "star"`.
ln -sfn "$root" "$dir/deps/star"
rm -rf "$dir/app/Sources" "$dir/app/Tests" "$dir/app/ReadmeSnippets" "$dir/app/Snippets"
python3 .ci/snippets.py "$dir/app" "$dir/deps/star" "$@" >/dev/null
quiet() { grep -Ev '^\[[0-9]+/[0-9]+\]|^Compiling|^Write|^Fetching|^Computing|^Creating|^Working copy|^Building for|^Build complete'; }
set +e
swift build --package-path "$dir/app" --build-tests 2>&1 | quiet
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "snippets: the Swift blocks do not build (scratch package: $dir/app)"; exit 1; }
swift test --package-path "$dir/app" --skip-build 2>&1 | grep -Ev '^(◇|↳)|started\.$'

#!/usr/bin/env bash
# Prints how many public declarations each library module has, from the symbol graphs that
# `swift package dump-symbol-graph` extracts from the built modules (it builds them first).
#
# What is counted, per module M: every symbol whose access level is `public` or `open` that M
# declares — its types, their members, its functions, its protocol requirements — in
# M.symbols.json, plus the members M adds in extensions of other modules' types, which the format
# keeps apart in M@Other.symbols.json (StarServer's `App.main(arguments:)` is one). Not counted:
# `package` and internal symbols (the graphs are dumped at --minimum-access-level public),
# members a type only inherits or gets from a protocol's default implementation
# (--skip-synthesized-members), extension blocks themselves (--omit-extension-block-symbols: an
# extension is not a declaration; its members are counted), and symbols of re-exported modules.
#
#   .ci/public-api.sh          # a table: module, own, in extensions of other modules' types, total
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

modules=(Star StarWebSocket StarWebSocketClient StarTesting StarServer StarBroadcast StarFiles StarWebSocketEngine)

log=$(mktemp /tmp/star-public-api.XXXXXX)
trap 'rm -f "$log"' EXIT
dir="$(swift build --show-bin-path)/../symbolgraph"
rm -rf "$dir"   # no graph of an earlier run (or a removed module) is counted
# It exits non-zero when it cannot extract the graph of a module that is not one of ours (the
# test-discovery modules SwiftPM makes); the graphs of the modules counted here are checked below.
swift package dump-symbol-graph --minimum-access-level public --skip-synthesized-members \
  --omit-extension-block-symbols >"$log" 2>&1 || true
for module in "${modules[@]}"; do
  [ -f "$dir/$module.symbols.json" ] || [ ! -d "Sources/$module" ] && continue   # older trees lack some modules
  grep -Ev '^\[[0-9]+/[0-9]+\]|^Compiling|^Write ' "$log" | head -50 >&2
  echo "public-api: no symbol graph for $module in $dir" >&2
  exit 1
done

python3 - "$dir" "${modules[@]}" <<'PY'
import json, os, sys

folder, modules = sys.argv[1], sys.argv[2:]

def count(path):
    with open(path) as f:
        graph = json.load(f)
    return sum(
        1 for symbol in graph.get("symbols", [])
        if symbol.get("accessLevel") in ("public", "open")
        and symbol.get("kind", {}).get("identifier") != "swift.extension"
        and "::SYNTHESIZED::" not in symbol.get("identifier", {}).get("precise", "")
    )

print(f"{'module':<22}{'own':>6}{'ext':>6}{'total':>7}   (ext: members added to other modules' types)")
grand = 0
for module in modules:
    own_file = os.path.join(folder, f"{module}.symbols.json")
    if not os.path.exists(own_file):
        print(f"{module:<22}{'-':>6}{'-':>6}{'-':>7}   (no such module in this tree)")
        continue
    own = count(own_file)
    ext = sum(count(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
              if name.startswith(module + "@") and name.endswith(".symbols.json"))
    grand += own + ext
    print(f"{module:<22}{own:>6}{ext:>6}{own + ext:>7}")
print(f"{'all':<22}{'':>6}{'':>6}{grand:>7}")
PY

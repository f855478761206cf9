#!/usr/bin/env python3
"""Writes every Swift block of the README (and of the DocC articles, with --docc) into a scratch
package that depends on this checkout of Star by path, so `.ci/snippets.sh` can build it and run its
tests: a snippet that stops compiling fails CI.

How a block is placed (first match wins):
  - first line `// swift-tools-version...`: the scratch package's manifest (the README's "Add Star"
    package); its `.package(url: ".../star.git", ...)` becomes `.package(path: STAR)`.
  - first line `// Sources/...` or `// Tests/...`: that file of the package.
  - first line `// Package.swift`: an excerpt of a manifest (targets, products or package
    dependencies, each ending in `,`), type-checked in the scratch manifest as an unused array of
    `Target`, `Product` or `Package.Dependency` (by its first call: `.target(`, `.library(`, `.package(`…).
  - `<!-- snippet: NAME -->` on the line before the fence: joined, in order, with the other blocks
    named NAME into one unit, their imports first; blocks after the first may use what earlier
    ones declared. A unit with `@Test` in one of its blocks is a file of the package's first test
    target; any other unit is an executable target (top-level code allowed).
  - `@Test` in the block: a file of the package's first test target (built and run by `swift test`).
  - anything else: an executable target of its own, its block as `main.swift`.
Every executable target depends on the package's first library target and on Star's products
(Star, StarServer, StarWebSocket, StarWebSocketClient, StarTesting, StarBroadcast, StarFiles).

  .ci/snippets.py OUT_DIR STAR_PATH [--docc]    # prints what it wrote
"""

import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCTS = ["Star", "StarServer", "StarWebSocket", "StarWebSocketClient", "StarTesting", "StarBroadcast", "StarFiles"]


def blocks(path):
    """(line number, marker or None, text) of each ```swift block of a Markdown file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```swift":
            start, body, i = i + 1, [], i + 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marker = None
            j = start - 2
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = re.match(r"<!--\s*snippet:\s*([\w-]+)\s*-->", lines[j].strip()) if j >= 0 else None
            if m:
                marker = m.group(1)
            found.append((start, marker, "\n".join(body) + "\n"))
        i += 1
    return found


def main():
    out, star = sys.argv[1], os.path.abspath(sys.argv[2])
    sources = [os.path.join(ROOT, "README.md")]
    if "--docc" in sys.argv[3:]:
        sources += sorted(glob.glob(os.path.join(ROOT, "Sources", "*", "*.docc", "*.md")))
    manifest, files, units, order, excerpts = None, {}, {}, [], []
    for source in sources:
        tag = re.sub(r"\W", "_", os.path.relpath(source, ROOT).replace(".md", ""))
        for line, marker, text in blocks(source):
            first = text.lstrip().split("\n", 1)[0]
            where = "%s:%d" % (os.path.relpath(source, ROOT), line)
            if first.startswith("// swift-tools-version"):
                if manifest is not None:
                    sys.exit("snippets: a second manifest at %s" % where)
                manifest = text
            elif re.match(r"// (Sources|Tests)/\S+\.swift$", first):
                files[first[3:]] = "// %s\n%s" % (where, text)
            elif first.strip() == "// Package.swift":
                excerpts.append((where, text))
            elif marker or "@Test" not in text:
                name = "Snippet_" + (marker.replace("-", "_") if marker else "%s_%d" % (tag, line))
                if name not in units:
                    units[name] = []
                    order.append(name)
                units[name].append("// %s\n%s" % (where, text))
            else:
                files["@tests/%s_%d.swift" % (tag, line)] = "// %s\n%s" % (where, text)
    if manifest is None:
        sys.exit("snippets: no Swift block starts with `// swift-tools-version` (the Add Star package)")
    manifest, count = re.subn(r'\.package\(url:\s*"[^"]*/star(\.git)?",[^)]*\)', '.package(path: "%s")' % star,
                              manifest)
    if count != 1:
        sys.exit("snippets: the manifest does not depend on Star by one .package(url: \".../star.git\", ...)")
    library = re.search(r'\.target\(\s*name:\s*"(\w+)"', manifest)
    tests = re.search(r'\.testTarget\(\s*name:\s*"(\w+)"', manifest)
    if not (library and tests):
        sys.exit("snippets: the manifest needs a library target (the app) and a test target")
    products = ['.product(name: "%s", package: "star")' % p for p in PRODUCTS]
    deps = ", ".join(['"%s"' % library.group(1)] + products)
    for where, text in excerpts:
        call = re.search(r"^\s*\.(\w+)\(", text, re.M)
        kind = {"package": "Package.Dependency", "library": "Product", "executable": "Product",
                "plugin": "Product"}.get(call.group(1) if call else "", "Target")
        manifest += "\n// %s (an excerpt, type-checked only)\nlet _: [%s] = [\n%s]\n" % (where, kind, text)
    tested = [n for n in order if any("@Test" in block for block in units[n])]
    executables = [n for n in order if n not in tested]
    manifest += "\n// Added by .ci/snippets.py: one executable target per snippet.\n"
    manifest += "package.targets += [\n"
    for name in executables:
        manifest += '    .executableTarget(name: "%s", dependencies: [%s], path: "ReadmeSnippets/%s"),\n' % (name, deps, name)
    manifest += "]\n"
    written = {"Package.swift": manifest}
    for path, text in files.items():
        written[path.replace("@tests", "Tests/" + tests.group(1))] = text
    for name in order:
        # A joined unit's imports go first: a later block's `import` is not valid after statements.
        body = "\n".join(units[name]).split("\n")
        imports = sorted({l for l in body if re.match(r"(@testable )?import \w+$", l.strip())})
        rest = [l for l in body if l not in imports]
        where = ("Tests/%s/%s.swift" % (tests.group(1), name)) if name in tested else ("ReadmeSnippets/%s/main.swift" % name)
        written[where] = "\n".join(imports + rest)
    for path, text in written.items():
        full = os.path.join(out, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        print("snippets: wrote %s" % path)


if __name__ == "__main__":
    main()

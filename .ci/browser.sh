#!/usr/bin/env bash
# Headless Chromium for the browser tests in Tests/Browser/ (driven over the Chrome
# DevTools Protocol by Tests/Browser/cdp.py).
#
# Usage: .ci/browser.sh        # install Debian's `chromium` if missing, print the binary's path
#        CHROMIUM=/path/to/chrome .ci/browser.sh   # check that one instead, install nothing
#        e.g. CHROMIUM=$(.ci/browser.sh)
#
# Idempotent: when Chromium is already there it only prints the path (no apt at all).
# Otherwise it runs `apt-get install --no-install-recommends chromium` (needs root, or
# password-less sudo), with `apt-get update` first only when apt does not know the
# package yet or the install fails on stale lists. The one recommended package,
# chromium-sandbox, is left out: the tests run Chromium with --no-sandbox (as root it
# refuses to start otherwise). About 15 s and ~300 MB on a fresh Debian 12.
#
# Prints the real browser executable (/usr/lib/chromium/chromium on Debian, not the
# /usr/bin/chromium shell wrapper, which adds its own flags and stderr noise).
# Exit: 0 with the path on stdout; non-zero when Chromium cannot be installed or does
# not run. CI must fail, never skip, without a browser.
set -euo pipefail

find_chromium() {
  local c=/usr/lib/chromium/chromium
  if [[ -x $c && ! -d $c ]]; then echo "$c"; return 0; fi
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

if [[ -n ${CHROMIUM:-} ]]; then
  # An explicit browser (as Tests/Browser/cdp.py honours it): use it, install nothing.
  bin=$(command -v -- "$CHROMIUM" || true)
  if [[ -z $bin || ! -x $bin || -d $bin ]]; then
    echo "browser.sh: \$CHROMIUM=$CHROMIUM is not an executable" >&2
    exit 1
  fi
elif ! bin=$(find_chromium); then
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "browser.sh: chromium is not installed and this user cannot run apt-get (not root, no password-less sudo)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp "${TMPDIR:-/tmp}/browser-apt.XXXXXX")
  trap 'rm -f "$log"' EXIT
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
  apt_update() { "${apt[@]}" update -qq >>"$log" 2>&1; }
  apt_install() { "${apt[@]}" install -y -qq --no-install-recommends chromium >>"$log" 2>&1; }

  echo "browser.sh: installing chromium with apt-get" >&2
  started=$(date +%s)
  candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -z $candidate || $candidate == "(none)" ]]; then
    apt_update || { echo "browser.sh: apt-get update failed:" >&2; tail -n 20 "$log" >&2; exit 1; }
  fi
  if ! apt_install; then
    # Stale package lists (a 404 on an old version) are the usual cause: refresh once, retry.
    if ! { apt_update && apt_install; }; then
      echo "browser.sh: apt-get install chromium failed:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
  fi
  echo "browser.sh: chromium installed in $(( $(date +%s) - started ))s" >&2
  bin=$(find_chromium) || { echo "browser.sh: chromium installed but no binary found" >&2; exit 1; }
fi

# It must actually run (missing libraries show up here, not in the tests).
if ! version=$(timeout 60 "$bin" --version 2>/dev/null) || [[ -z $version ]]; then
  echo "browser.sh: $bin does not run (--version failed)" >&2
  exit 1
fi
echo "browser.sh: $version" >&2
echo "$bin"

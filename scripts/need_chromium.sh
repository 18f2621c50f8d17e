#!/usr/bin/env bash
# Make sure the browser test's chromium is there: install Debian's package with apt-get when it is
# missing (needs root or sudo). When it cannot be installed, say what to do and exit 1.
# Usage: bash scripts/need_chromium.sh [path-to-chromium]   (default /usr/bin/chromium)
set -uo pipefail
chromium="${1:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
fail() {
  cat >&2 <<MSG
test.sh: $chromium is missing and could not be installed ($1).
The browser test (tests/demo/test_browser.py) drives Debian's chromium. Either
  - install it yourself:  sudo apt-get install chromium   (then run ./test.sh again), or
  - run the tests without the browser test:  ./test.sh -m "not browser"
MSG
  exit 1
}
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  fail "not root, and no sudo"
fi
command -v apt-get >/dev/null 2>&1 || fail "no apt-get: not a Debian or Ubuntu system"
echo "test.sh: installing Debian's chromium for the browser test (apt-get, may ask for your sudo password)" >&2
"${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null \
  || fail "apt-get failed"
[ -x "$chromium" ] || fail "apt-get installed no $chromium"

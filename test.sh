#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, browser test included.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then  # the browser test drives Debian's Chromium
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest "$@"

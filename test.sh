#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, browser test included.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh requirements-dev.txt
# The browser test drives Debian's Chromium: installed with apt-get when missing (root or sudo);
# when it cannot be, the script says what to do and stops. Skip it with: ./test.sh -m "not browser"
case " $* " in
  *" not browser"*) ;;
  *) bash scripts/need_chromium.sh /usr/bin/chromium || exit 1 ;;
esac
exec .venv/bin/python -m pytest "$@"

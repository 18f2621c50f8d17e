#!/usr/bin/env bash
# Create .venv (once) and install the project's requirements into it. Idempotent.
# Usage: source scripts/bootstrap.sh [requirements-file]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="${1:-requirements.txt}"
if [ ! -x "$root/.venv/bin/python" ]; then
  python3 -m venv "$root/.venv"
fi
stamp="$root/.venv/.installed-$(basename "$req")"
if [ ! -f "$stamp" ] || [ "$root/$req" -nt "$stamp" ] || [ "$root/requirements.txt" -nt "$stamp" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -r "$root/$req"
  touch "$stamp"
fi

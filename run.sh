#!/usr/bin/env bash
# Set up (first time) and start the playground at http://127.0.0.1:7860 with the shipped checkpoints.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh requirements.txt
exec .venv/bin/python app.py "$@"

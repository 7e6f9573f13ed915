#!/usr/bin/env bash
# The test suite: set up, then run pytest. Tests that need tools this machine lacks skip and say which.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"

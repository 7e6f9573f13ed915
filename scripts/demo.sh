#!/usr/bin/env bash
# The main job: set up, generate the `paper` scenario's dataset (cached after the first run) and
# evaluate the no-reconfiguration baseline over a day of the test set, printing the per-hour table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/srem evaluate --scenario paper --policy static --split test "$@"

#!/usr/bin/env bash
# The main job: set up, generate the `paper` scenario's dataset (cached after the first run), and
# evaluate the shipped SR-EM policy against LAG, DDQN-CM, RANDOM and static over the 300 test
# workloads, printing the per-hour comparison (Fig. 6 of the paper; CSV and plots in
# results/fig6-paper, or results/fig6-paper-quick with --quick). Safe to run again: --force lets it
# replace the results of its own earlier run, which `srem experiment` otherwise refuses to overwrite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/srem experiment fig6 --force "$@"

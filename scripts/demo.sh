#!/usr/bin/env bash
# The main job: set up, then
# 1. the paper's comparison in simulation: generate the `paper` scenario's dataset (cached after the
#    first run) and evaluate the shipped SR-EM policy against LAG, DDQN-CM, RANDOM, static and the
#    EM-aware baselines over the 300 test workloads (Fig. 6; CSV and plots in results/fig6-paper);
# 2. where BMv2 and Mininet are installed, the same policy live: bring the testbed up for test
#    workload 0, run the steps from 10:00 to 16:00 (across the working-hours/evening boundary) with
#    probes on every chain, print the per-step table (acceptance, the controller's timing, probe
#    loss and latency), tear down (run directory results/testbed-paper-wl0-srem). Without them it
#    says in one line what is missing.
# Safe to run again: --force lets it replace the results of its own earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/srem experiment fig6 --force "$@"
lacking=$(.venv/bin/python -c "from controller.testbed.preflight import missing; print('; '.join(missing()))")
if [ -n "$lacking" ]; then
    echo "demo: live testbed skipped: it needs $lacking. BMv2 (simple_switch_grpc) comes from p4lang's upstream packages or the p4lang/behavioral-model image; see README, 'The live testbed'." >&2
    exit 0
fi
echo >&2
exec .venv/bin/srem testbed run --scenario paper --workload 0 --policy srem --steps 4 --step-seconds 10 \
    --probe-pps 5 --budget-pps 300 --force

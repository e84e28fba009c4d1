#!/usr/bin/env bash
# A class run on a busy machine: N copies of the 1.01 and 2.01 references graded with
# `dlgrade grade --jobs 1` (the look-ahead on, where a core is free) while two CPU hogs (each
# in its own session, as other programs are) and a process churner run. Every student must
# be graded 100 %; a crash, a harness error or a machine_busy check is printed at the end.
#
#   DLGRADE_DATA_DIR=../shared/data N=16 benchmarks/stress_class.sh
# Used for issue 13's look-ahead worker death: 16 students, 16 graded at 100 %, 204 s.
set -u
cd "$(dirname "$0")/.."
N=${N:-16}
work=$(mktemp -d)
for i in $(seq -w 1 "$N"); do
    mkdir -p "$work/class/s$i"
    cp reference/activity_1_01.py reference/activity_2_01.py "$work/class/s$i/"
done
pids=()
for _ in 1 2; do setsid bash -c 'while :; do :; done' & pids+=($!); done
setsid bash -c 'while :; do /bin/true; /bin/true; sleep 0.01; done' & pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null; pkill -f "while :; do :; done"; pkill -f "/bin/true; /bin/true"' EXIT
began=$(date +%s)
.venv/bin/dlgrade grade "$work/class" --out "$work/results" --tier quick \
    --activity 1.01 --activity 2.01 --jobs 1
echo "exit $? after $(( $(date +%s) - began )) s; results in $work/results"
grep -l '"crash"\|"harness_error"\|"machine_busy"' "$work"/results/students/*.json \
    && echo "ABNORMAL records above" || echo "no crash, harness error or machine_busy"

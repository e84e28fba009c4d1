#!/usr/bin/env bash
# The full tier of all nine activities on the reference, on a GPU runner, in the jail.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, as root (the jail)
#
# 1. a fresh virtual environment with the `gpu` extra (TensorFlow with CUDA) — or the
#    Python in $GPU_CHECK_PYTHON, as it is;
# 2. the data: $DLGRADE_DATA_DIR where it is set (a mirror with the book's files), else
#    `dlgrade data fetch` of each dataset (needs the network; what cannot be had is
#    reported, and the checks that need it end `data_missing`: the full tier never grades
#    on synthetic data); the Fashion-MNIST twin is written into the cache either way;
# 3. `dlgrade check reference --tier full` once per activity, while nvidia-smi is sampled;
# 4. a table: activity, wall time, the device its worker ran on (as the grade says it),
#    the peak GPU memory in use, the score — and the total.
#
# Settings: GPU_CHECK_ACTIVITIES ("1.01 2.01 …"; default every declared activity), GPU_CHECK_TIER (full), GPU_CHECK_OUT
# (a folder for the grades and logs; default a new temporary one), GPU_CHECK_PYTHON.
set -euo pipefail

cd "$(dirname "$0")/.."
TIER=${GPU_CHECK_TIER:-full}
OUT=${GPU_CHECK_OUT:-$(mktemp -d /tmp/dlgrade-gpu-check.XXXXXX)}
mkdir -p "$OUT"

if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
    PYTHON=$GPU_CHECK_PYTHON
else
    python3 -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install --quiet --upgrade pip
    "$OUT/venv/bin/pip" install --quiet -e ".[gpu]"
    PYTHON=$OUT/venv/bin/python
fi
DLGRADE=("$PYTHON" -m dlgrade.cli)
# every activity the rubrics declare (ACTIVITY = dlgrade.activity(...) in checks/)
ACTIVITIES=${GPU_CHECK_ACTIVITIES:-$("$PYTHON" -c 'from dlgrade.rubric import ACTIVITIES; print(*ACTIVITIES)')}

echo "== machine"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
else
    echo "no nvidia-smi: no GPU here (the table will say CPU)"
fi
"$PYTHON" - <<'EOF'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from dlgrade import gpu
print("TensorFlow", tf.__version__, "sees", [d.name for d in tf.config.list_physical_devices("GPU")])
print("dlgrade gives workers", [g.label() for g in gpu.discover()] or "no GPU")
EOF

echo "== data"
if [[ -z "${DLGRADE_DATA_DIR:-}" ]]; then
    for name in sonar ibm fashion_mnist fruits360 vgg16_notop nltk glove amazon_reviews; do
        "${DLGRADE[@]}" data fetch "$name" >"$OUT/fetch-$name.log" 2>&1 \
            && echo "fetched $name" || echo "could not fetch $name (see $OUT/fetch-$name.log)"
    done
fi
"$PYTHON" -c "from dlgrade import twins; print('Fashion-MNIST twin:', twins.fashion_mnist())"
"${DLGRADE[@]}" data list || true

sample_gpu() {  # the GPUs' memory in use, every half second, until killed
    while true; do
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null \
            | awk '{ used += $1 } END { print used + 0 }'
        sleep 0.5
    done
}

echo "== the $TIER tier, one activity at a time (grades and logs in $OUT)"
declare -a ROWS
TOTAL_WALL=0
for activity in $ACTIVITIES; do
    grade="$OUT/grade-$activity.json"
    samples="$OUT/gpu-memory-$activity.txt"
    : >"$samples"
    if command -v nvidia-smi >/dev/null; then
        sample_gpu >"$samples" &
        sampler=$!
    else
        sampler=""
    fi
    began=$(date +%s%N)
    "${DLGRADE[@]}" check reference --activity "$activity" --tier "$TIER" \
        --grade-json "$grade" >"$OUT/check-$activity.log" 2>&1 || true
    ended=$(date +%s%N)
    [[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null || true
    wall=$(awk -v a="$began" -v b="$ended" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    TOTAL_WALL=$(awk -v t="$TOTAL_WALL" -v w="$wall" 'BEGIN { printf "%.1f", t + w }')
    ROWS+=("$("$PYTHON" - "$activity" "$grade" "$samples" "$wall" <<'EOF'
import json, sys
activity, grade, samples, wall = sys.argv[1:]
try:
    data = json.load(open(grade))
    device = data.get("device", "?")
    score = f"{data['score']:g}/{data['max_score']:g}"
    missing = sum(c["reason"] == "data_missing" for c in data["checks"])
    runner = sum(c["reason"] == "runner" for c in data["checks"])
    notes = ", ".join(
        part for part in (f"{missing} data missing" if missing else "",
                          f"{runner} runner" if runner else "") if part
    )
except (OSError, ValueError, KeyError):
    device, score, notes = "?", "no grade", "see the log"
memory = [int(float(x)) for x in open(samples).read().split() if x.replace(".", "").isdigit()]
peak = f"{max(memory):,} MiB" if memory else "n/a"
print(f"| {activity} | {float(wall):8.1f} s | {device} | {peak} | {score} | {notes} |")
EOF
)")
    echo "${ROWS[-1]}"
done

echo
echo "== $TIER tier on the reference"
echo "| activity | wall | device | peak GPU memory (all GPUs) | score | notes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
printf '| total | %8.1f s | | | | |\n' "$TOTAL_WALL"

#!/usr/bin/env bash
# Reproduces the shipped default model (models/default, v2) from the Bandai-Namco and more-mocap archives on a
# 2-core CPU. Every stage resumes from its checkpoint, so an interrupted run continues when this script is run
# again.   bash scripts/train_default.sh [CONFIG] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CONFIG=${1:-configs/default.json}
RUNS=${2:-runs/default}
M=.venv/bin/momask
mkdir -p "$RUNS"
$M prepare-data  # both archives, with composed clips -> data/default
# v2's RVQ continues v1's (the model directory at commit d02bad0, taken from this repository's history) on the
# larger data (with the new data's feature statistics), for the steps configs/default.json gives.
V1="$RUNS/v1"
if [ ! -f "$V1/config.json" ]; then
  mkdir -p "$V1"
  for f in config.json rvq.safetensors mask.safetensors residual.safetensors length.safetensors mean.npy std.npy; do
    git show "d02bad0:models/default/$f" > "$V1/$f"
  done
fi
# One thread per process: on two shared cores, two-thread processes wait on each other's threads.
export OMP_NUM_THREADS=1
$M train rvq --config "$CONFIG" --init "$V1" --out "$RUNS/rvq" > "$RUNS/rvq.out" 2>&1 &
RVQ=$!
$M train length --config "$CONFIG" --out "$RUNS/length" > "$RUNS/length.out" 2>&1  # embeds the caption pool
wait $RVQ
$M train mask --config "$CONFIG" --rvq "$RUNS/rvq" --out "$RUNS/mask" > "$RUNS/mask.out" 2>&1 &
MASK=$!
$M train residual --config "$CONFIG" --rvq "$RUNS/rvq" --out "$RUNS/residual" > "$RUNS/residual.out" 2>&1
$M train evaluator --config "$CONFIG" --out "$RUNS/evaluator" > "$RUNS/evaluator.out" 2>&1
wait $MASK
$M train assemble --rvq "$RUNS/rvq" --mask "$RUNS/mask" --residual "$RUNS/residual" --length "$RUNS/length" \
  --evaluator "$RUNS/evaluator" --out models/default
echo "train_default: model written to models/default"

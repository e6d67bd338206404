#!/usr/bin/env bash
# Reproduces the shipped default model (models/default) from the Bandai-Namco mocap on a 2-core CPU.
# Every stage resumes from its checkpoint, so an interrupted run continues when this script is run again.
#   bash scripts/train_default.sh [CONFIG] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CONFIG=${1:-configs/default.json}
RUNS=${2:-runs/default}
M=.venv/bin/momask
mkdir -p "$RUNS"
$M prepare-data
# The RVQ-VAE first (both cores); then the two transformers side by side, one core each, with the small
# length estimator and the evaluator after them.
$M train rvq --config "$CONFIG" --out "$RUNS/rvq"
OMP_NUM_THREADS=1 $M train mask --config "$CONFIG" --rvq "$RUNS/rvq" --out "$RUNS/mask" > "$RUNS/mask.out" 2>&1 &
MASK=$!
OMP_NUM_THREADS=1 $M train residual --config "$CONFIG" --rvq "$RUNS/rvq" --out "$RUNS/residual" \
  > "$RUNS/residual.out" 2>&1 &
RESIDUAL=$!
wait $RESIDUAL
OMP_NUM_THREADS=1 $M train length --config "$CONFIG" --out "$RUNS/length"
OMP_NUM_THREADS=1 $M train evaluator --config "$CONFIG" --out "$RUNS/evaluator"
wait $MASK
$M train assemble --rvq "$RUNS/rvq" --mask "$RUNS/mask" --residual "$RUNS/residual" --length "$RUNS/length" \
  --evaluator "$RUNS/evaluator" --out models/default
echo "train_default: model written to models/default"

#!/usr/bin/env bash
# The main job (sets up first, idempotent): convert a humanoid BVH clip to the 22 SMPL joints, then to
# MoMask's 263-d features and back, and render a stick-figure preview.
#   bash scripts/main.sh [CLIP.bvh] [OUT_DIR]
# Without a clip it uses the SMPL-22 template walk from ../shared/rigs when that folder exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CLIP=${1:-../shared/rigs/bvh_smpl22_humanml3d_momask_template.bvh}
OUT=${2:-out}
if [ ! -f "$CLIP" ]; then
  echo "main: no BVH clip at '$CLIP'; run: bash scripts/main.sh YOUR_CLIP.bvh" >&2
  exit 2
fi
mkdir -p "$OUT"
NAME=$(basename "${CLIP%.*}")
M=.venv/bin/momask
$M bvh2joints "$CLIP" "$OUT/$NAME.joints.npy"
$M features "$OUT/$NAME.joints.npy" "$OUT/$NAME.features.npy"
$M joints "$OUT/$NAME.features.npy" "$OUT/$NAME.recovered.npy"
$M render "$OUT/$NAME.features.npy" "$OUT/$NAME.gif" --title "$NAME"
echo "main: wrote $OUT/$NAME.{joints,features,recovered}.npy and the preview $OUT/$NAME.gif"

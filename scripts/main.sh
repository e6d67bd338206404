#!/usr/bin/env bash
# The main job (sets up first, idempotent): in headless Blender 5.0 the extension is installed from its zip, the
# built-in MoMask rig (or the character given with --rig) is animated from a prompt with the default model,
# the scene is saved as out/main_job.blend and previewed as out/main_job.gif (Workbench renders).
#   bash scripts/main.sh ["PROMPT"] [--rig FILE.fbx|.glb|.gltf|.bvh|.blend] [--out DIR] [--seconds S] [--seed N]
# Paths are taken from the folder it is called in; scripts/main_job.py --help explains every option.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && bash scripts/setup.sh)
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/main_job.py" "$@"

"""Build the extension zip with Blender's own builder (the copy inside the bpy wheel), after validating the
manifest with its tags list. What goes in is the manifest's [build] list: the root __init__.py, the manifest,
momask_blender/, core/ and models/default/.

    .venv/bin/python scripts/build_extension.py [--output-dir dist]
"""
import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def blender_scripts() -> Path:
    spec = importlib.util.find_spec("bpy")  # located, not imported: the builder is a plain script in the wheel
    if spec is None:
        sys.exit("build_extension: bpy 5.0.1 is not installed here; run `bash scripts/setup.sh` and use "
                 ".venv/bin/python")
    return Path(spec.origin).parent / "5.0" / "scripts"


def main(argv=None) -> int:
    summary = __doc__.split("\n\n")[0].replace("\n", " ")  # the docstring's first paragraph, whole
    parser = argparse.ArgumentParser(description=summary + " Install the zip in Blender 5.0 with Edit > "
                                     "Preferences > Get Extensions > the menu at the top right > Install from Disk.")
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist", metavar="DIR",
                        help="where the zip (momask_blender-VERSION.zip) goes (default: dist/ in this checkout)")
    args = parser.parse_args(argv)
    scripts = blender_scripts()
    cli = [sys.executable, str(scripts / "addons_core/bl_pkg/cli/blender_ext.py")]
    tags = ["--valid-tags", str(scripts / "modules/_bpy_internal/extensions/tags.py")]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(cli + ["validate", str(REPO)] + tags, check=True)
    subprocess.run(cli + ["build", "--source-dir", str(REPO), "--output-dir", str(args.output_dir)] + tags, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

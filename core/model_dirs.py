"""Where the default model is: shipped beside core/ at the repository's (and the Blender extension's) root. Torch-free,
so that Blender's preferences name the very directory the worker loads for a request without a model."""
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"

"""Blender extension entry point: the repository root is the extension's root (blender_manifest.toml beside
this file), so Blender imports this package; the Blender-side code lives in momask_blender/ and the numpy
parts it shares with the worker in core/."""
from .momask_blender import register, unregister

__all__ = ["register", "unregister"]

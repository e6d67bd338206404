"""Helpers shared by several test modules and the benchmarks, kept here so that no test module imports another:
motions and rigs in numpy (`rigs`, `motions`), files the tests write (`files`), tiny random models
(`tiny_models`), Blender fixtures and helpers (`blender`) and the retargeting measures (`retarget`)."""

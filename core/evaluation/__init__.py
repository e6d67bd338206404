"""Evaluation of text-to-motion models (docs/momask.md, "Evaluation"): the text-motion evaluator (`evaluator`), the
metrics on its embeddings (`metrics`, numpy only) and the `momask evaluate` protocol (`evaluate`)."""
from .evaluator import (Evaluator, TextMotionEvaluator, build_evaluator, load_evaluator,
                        save_evaluator)

__all__ = ["Evaluator", "TextMotionEvaluator", "build_evaluator", "load_evaluator", "save_evaluator"]

"""What a model knows, and what it understood a prompt as.

A model trained on a few dozen actions answers every prompt with one of them, so a prompt it does not know
("does a backflip") silently becomes the nearest known action. To say so, a model directory carries its
actions (actions.json: names, how many training clips each, example prompts) and the text embeddings of
up to CAPTIONS_PER_ACTION training captions per action (actions.npy). A prompt's similarity to an action is
the cosine similarity of its embedding to the nearest of that action's captions; below FAR_SIMILARITY the
prompt is far from everything the model learned, and the caller warns. Built from the training dataset when
a model directory is assembled. Numpy only.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACTIONS_FILE, EMBEDDINGS_FILE = "actions.json", "actions.npy"
CAPTIONS_PER_ACTION = 48  # caption embeddings kept per action (float16: 48 x 384 x 2 bytes = 37 kB each)
EXAMPLES_PER_ACTION = 3
# Nearest-caption similarity under which a prompt counts as unknown. Measured with MiniLM against data/default's
# captions: of the 320 benchmark prompts (scripts/bench_prompts.json) 5 score below 0.5 (5th percentile 0.58),
# of 20 prompts about actions absent from the data ("plays the violin", "stirs a pot of soup") 13 do.
FAR_SIMILARITY = 0.5


@dataclass(frozen=True)
class KnownActions:
    names: list[str]
    clips: list[int]  # training clips (mirrors included) per action
    examples: list[list[str]]
    embeddings: np.ndarray  # (captions, dim) float32, unit length
    labels: np.ndarray  # (captions,) index into names

    def closest(self, embedding: np.ndarray, count: int = 3) -> list[tuple[str, float]]:
        """The `count` actions nearest to a prompt's embedding, with their similarity, nearest first."""
        embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
        similarity = self.embeddings @ (embedding / max(float(np.linalg.norm(embedding)), 1e-8))
        best = np.full(len(self.names), -1.0)
        np.maximum.at(best, self.labels, similarity)
        order = np.argsort(-best)[:count]
        return [(self.names[i], float(best[i])) for i in order]

    def save(self, model_dir) -> None:
        model_dir = Path(model_dir)
        (model_dir / ACTIONS_FILE).write_text(json.dumps(
            {"actions": [{"name": n, "clips": c, "examples": e} for n, c, e in zip(self.names, self.clips,
                                                                                  self.examples)]}, indent=1))
        np.save(model_dir / EMBEDDINGS_FILE, np.concatenate(
            [self.labels[:, None].astype(np.float16), self.embeddings.astype(np.float16)], axis=1))

    @classmethod
    def load(cls, model_dir) -> "KnownActions | None":
        """The model directory's actions, or None for a model without them (the released checkpoints)."""
        model_dir = Path(model_dir)
        if not (model_dir / ACTIONS_FILE).is_file():
            return None
        actions = json.loads((model_dir / ACTIONS_FILE).read_text())["actions"]
        table = np.load(model_dir / EMBEDDINGS_FILE).astype(np.float32)
        embeddings = table[:, 1:] / np.maximum(np.linalg.norm(table[:, 1:], axis=1, keepdims=True), 1e-8)
        return cls([a["name"] for a in actions], [a["clips"] for a in actions], [a["examples"] for a in actions],
                   embeddings, table[:, 0].astype(np.int64))


def collect_captions(dataset, seed: int = 0) -> tuple[list[str], list[int], list[list[str]]]:
    """(action per caption, clips per action in name order, captions per action) from a ClipDataset: every
    clip's captions, grouped by action and capped at CAPTIONS_PER_ACTION distinct ones (seeded choice)."""
    by_action: dict[str, set] = {}
    clips: dict[str, int] = {}
    for i in range(len(dataset)):
        content = dataset.content(i)
        action = content if "+" in content else dataset.action(i)  # each composition is its own action here
        clips[action] = clips.get(action, 0) + 1
        by_action.setdefault(action, set()).update(dataset[i].captions)
    rng = np.random.default_rng(seed)
    names = sorted(by_action)
    captions = []
    for name in names:
        pool = sorted(by_action[name])
        captions.append([pool[k] for k in sorted(rng.permutation(len(pool))[:CAPTIONS_PER_ACTION])])
    return names, [clips[n] for n in names], captions


def build_known_actions(dataset, encode) -> KnownActions:
    """KnownActions of a dataset, `encode(list of str) -> (n, dim) array` being the model's text encoder."""
    names, clips, captions = collect_captions(dataset)
    flat = [c for group in captions for c in group]
    labels = np.concatenate([np.full(len(group), k) for k, group in enumerate(captions)])
    embeddings = np.asarray(encode(flat), dtype=np.float32)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-8)
    examples = [sorted(group, key=len)[:EXAMPLES_PER_ACTION] for group in captions]
    return KnownActions(names, clips, examples, embeddings, labels)


def understood_line(closest: list[tuple[str, float]], known: KnownActions) -> str:
    """What a user is told: the nearest actions with similarity, and a warning naming what the model knows
    when even the nearest is far."""
    said = ", ".join(f"{name} ({similarity:.2f})" for name, similarity in closest)
    if closest[0][1] >= FAR_SIMILARITY:
        return f"understood as: {said}"
    known_names = ", ".join(n for n in known.names if "+" not in n)
    return (f"warning: the prompt is far from every action this model learned (nearest: {said}); it will "
            f"generate the nearest. Known actions: {known_names}")

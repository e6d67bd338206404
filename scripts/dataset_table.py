"""Per-action table of a prepared dataset's train split: clips, seconds, and each action's share of the training
draws with balanced sampling (the config's action_balance) next to its share when every clip is drawn equally
often (the released recipe).

  .venv/bin/python scripts/dataset_table.py --data data/default --config configs/default.json
"""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.dataset import load_dataset  # noqa: E402
from core.timebase import FPS  # noqa: E402
from core.train.config import load_config  # noqa: E402
from core.train.data import action_weights  # noqa: E402


def table(data: str, balance: float) -> str:
    dataset = load_dataset(data, "train")
    actions = [dataset.action(i) for i in range(len(dataset))]
    weights = action_weights(actions, dataset.lengths, balance)
    rows = defaultdict(lambda: [0, 0.0, 0.0])
    for action, frames, weight in zip(actions, dataset.lengths, weights):
        row = rows[action]
        row[0], row[1], row[2] = row[0] + 1, row[1] + frames / FPS, row[2] + weight
    lines = [f"Train split of `{Path(data).name}` (mirrored copies included): {len(dataset)} clips, "
             f"{sum(r[1] for r in rows.values()) / 60:.0f} min; balanced sampling with action_balance {balance:g}.",
             "", "| action | clips | seconds | share of draws, balanced | share, every clip equally |",
             "|---|---|---|---|---|"]
    for action, (clips, seconds, share) in sorted(rows.items(), key=lambda item: -item[1][2]):
        lines.append(f"| {action} | {clips} | {seconds:.0f} | {share:.1%} | {clips / len(dataset):.1%} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/default", help="prepared dataset (default: data/default)")
    parser.add_argument("--config", default="configs/default.json", help="training config with action_balance")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    balance = load_config(args.config).action_balance
    if balance is None:
        parser.error(f"{args.config} has no action_balance: every clip is drawn equally often")
    text = table(args.data, balance)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Prompt-following benchmark: does the model do what a prompt asks, as judged from the generated joints?

For every action in scripts/bench_prompts.json (prompts written by hand, never used in training), each prompt
is generated with a few candidates at fixed seeds and each candidate is judged by that action's kinematic
checks (core.evaluation.motion_checks). Success is the share of candidates that pass, per action and overall.

  .venv/bin/python scripts/bench_prompts.py --calibrate --data data/default   # checks on real clips
  .venv/bin/python scripts/bench_prompts.py --model models/default --out docs/default-model/prompts.md
  .venv/bin/python scripts/bench_prompts.py --prompts scripts/first_prompts.json   # the plainest prompts

--calibrate reports, per action, the share of its real clips that pass its checks (a check that real clips
fail is no check) and the share of every other action's clips that pass them too (a check everything passes
is no check either).
"""
import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.evaluation.motion_checks import describe_checks, judge, motion_statistics  # noqa: E402

PROMPTS = REPO / "scripts" / "bench_prompts.json"


def is_composition(action: str) -> bool:
    """Two actions at once ("a+b") or one after the other ("a>b"), as the benchmark names them."""
    return "+" in action or ">" in action


def load_prompts(path=PROMPTS) -> dict[str, list[str]]:
    """{action: [prompts]} from the benchmark file."""
    return json.loads(Path(path).read_text())["actions"]


def calibrate(data: str, actions: list[str]) -> str:
    """Markdown table: per action, the share of its real clips (all splits, mirrors included) passing its
    checks and the share of other actions' clips passing them."""
    from core.dataset import SPLITS, load_dataset
    from core.features import recover_from_ric
    stats_by_action = defaultdict(list)
    for split in SPLITS:
        dataset = load_dataset(data, split)
        for i in range(len(dataset)):
            clip = dataset[i]
            stats_by_action[clip.action].append(motion_statistics(recover_from_ric(clip.features)))
    lines = ["| action | checks | real clips | real pass | other actions' clips passing |", "|---|---|---|---|---|"]
    for action in actions:
        own = stats_by_action.get(action, [])
        others = [s for other, values in stats_by_action.items() if other != action for s in values]
        own_pass = np.mean([judge(action, s) for s in own]) if own else float("nan")
        other_pass = np.mean([judge(action, s) for s in others])
        lines.append(f"| {action} | {describe_checks(action)} | {len(own)} | {own_pass:.0%} | {other_pass:.1%} |")
    return "\n".join(lines)


def judge_generated(action: str, motion) -> bool:
    """A generated motion against its benchmark action; "a>b" is a sequence: part k of the motion (its
    segment, as the sequence generator made it) must pass action k."""
    parts = action.split(">")
    if len(parts) == 1:
        return judge(action, motion_statistics(motion.joints))
    starts = getattr(motion, "segment_starts", [0])
    if len(starts) != len(parts):
        return False  # the prompt was not understood as that many parts
    bounds = list(starts) + [motion.length]
    return all(judge(part, motion_statistics(motion.joints[bounds[k]:bounds[k + 1]]))
               for k, part in enumerate(parts))


def run(model: str, prompts: dict[str, list[str]], candidates: int, seconds: float, seed: int) -> tuple[str, dict]:
    """Generate every prompt as a user's prompt is generated (chained prompts through the sequence generator,
    `seconds` per part) and judge it; returns the markdown table and per-action results."""
    from core.checkpoint import load_model_dir, resolve_model_dir
    from core.prompt_generation import generate_prompt
    from core.text_encoders import get_text_encoder
    from core.timebase import FPS
    path = resolve_model_dir(model)
    models = load_model_dir(path)
    encoder = get_text_encoder(models.config["text_encoder"]["name"])
    results, failures = {}, {}
    started = time.perf_counter()
    for action, texts in prompts.items():
        frames = round(seconds * FPS) * len(action.split(">"))
        passed = []
        for k, prompt in enumerate(texts):
            motions, _ = generate_prompt(models, encoder, prompt, frames, candidates=candidates, seed=seed + k)
            verdicts = [judge_generated(action, m) for m in motions]
            passed += verdicts
            if not all(verdicts):
                failures.setdefault(action, []).append(f"{prompt} ({sum(verdicts)}/{len(verdicts)})")
        results[action] = float(np.mean(passed))
        print(f"{action:24s} {results[action]:.0%}", file=sys.stderr)
    groups = {"single actions": [a for a in results if not is_composition(a)],
              "compositions": [a for a in results if is_composition(a)]}
    lines = [f"Model `{path.name}`: {len(prompts)} actions, {sum(map(len, prompts.values()))} prompts x "
             f"{candidates} candidates ({seconds:g} s per action, seeds {seed}+prompt index), "
             f"{time.perf_counter() - started:.0f} s.", ""]
    for group, actions in groups.items():
        if actions:
            values = [results[a] for a in actions]
            lines.append(f"- **{group}: {np.mean(values):.0%}** (mean over {len(actions)} actions); at 70% or "
                         f"more: {sum(v >= 0.7 for v in values)} of {len(actions)}")
    lines += ["", "| action | success | failing prompts (candidates passing) |", "|---|---|---|"]
    lines += [f"| {a} | {r:.0%} | {'; '.join(failures.get(a, [])) or '-'} |" for a, r in results.items()]
    return "\n".join(lines), results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default", help="model directory (default: models/default)")
    parser.add_argument("--prompts", default=str(PROMPTS), help="benchmark prompts (JSON)")
    parser.add_argument("--actions", nargs="*", help="only these actions")
    parser.add_argument("--candidates", type=int, default=3, help="candidates per prompt (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each generation, per part for chained prompts (default 4 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first prompt of each action (default 0)")
    parser.add_argument("--calibrate", action="store_true", help="judge the real clips of --data instead")
    parser.add_argument("--data", default="data/default", help="prepared dataset for --calibrate")
    parser.add_argument("--out", help="also write the table to this markdown file (and the results, with --model, "
                                      "next to it as .json)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE.json", "AFTER.json"),
                        help="instead: a before/after table of two runs' results")
    args = parser.parse_args(argv)
    if args.compare:
        table = compare(*args.compare)
        print(table)
        if args.out:
            Path(args.out).write_text(table + "\n")
        return 0
    prompts = load_prompts(args.prompts)
    if args.actions:
        prompts = {a: prompts[a] for a in args.actions}
    if args.calibrate:  # only actions that real clips show: no compositions
        prompts = {a: p for a, p in prompts.items() if not is_composition(a)}
    results = None
    if args.calibrate:
        table = calibrate(args.data, list(prompts))
    else:
        table, results = run(args.model, prompts, args.candidates, args.seconds, args.seed)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        if results is not None:
            Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


def compare(before: str, after: str) -> str:
    """Markdown: success per action of two runs (their --out .json files), actions of either run."""
    first, second = (json.loads(Path(p).read_text()) for p in (before, after))
    lines = [f"| action | {Path(before).stem} | {Path(after).stem} |", "|---|---|---|"]
    for action in list(first) + [a for a in second if a not in first]:
        cells = [f"{r[action]:.0%}" if action in r else "-" for r in (first, second)]
        lines.append(f"| {action} | {cells[0]} | {cells[1]} |")
    for name, composed in (("single actions", False), ("compositions", True)):
        shared = [a for a in second if is_composition(a) == composed and a in first]
        if shared:
            lines.append(f"| **{name}, mean over the {len(shared)} in both** | "
                         f"**{np.mean([first[a] for a in shared]):.0%}** | **{np.mean([second[a] for a in shared]):.0%}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

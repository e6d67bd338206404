"""A run's record of its losses: log.csv (one row per logging interval, appended as training goes) and
curves.png drawn from it. A resumed run first drops the rows written after its checkpoint, so the file
reads as if the run had never stopped."""
import csv
import math
from pathlib import Path

from matplotlib.figure import Figure

LOG_CSV, CURVES_PNG = "log.csv", "curves.png"
NOT_PLOTTED = ("step", "seconds", "samples_per_s")


class TrainingLog:
    def __init__(self, out: Path, resume_step: int):
        self.csv, self.png = Path(out) / LOG_CSV, Path(out) / CURVES_PNG
        rows = [r for r in self.rows() if int(r["step"]) <= resume_step]
        self.fields = list(rows[0]) if rows else None
        if self.csv.exists():
            self._rewrite(rows)

    def rows(self) -> list[dict]:
        if not self.csv.is_file():
            return []
        with open(self.csv, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        with open(self.csv, "w", newline="") as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row)
            self._rewrite([])
        with open(self.csv, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(row)

    def plot(self, title: str) -> None:
        """One panel per logged quantity against the step, on a log scale where it spans over a decade."""
        rows = self.rows()
        if not rows:
            return
        names = [n for n in rows[0] if n not in NOT_PLOTTED]
        steps = [int(r["step"]) for r in rows]
        columns = math.ceil(math.sqrt(len(names)))
        fig = Figure(figsize=(4 * columns, 3 * math.ceil(len(names) / columns)), layout="constrained")
        fig.suptitle(title)
        for k, name in enumerate(names):
            ax = fig.add_subplot(math.ceil(len(names) / columns), columns, k + 1)
            values = [float(r[name]) for r in rows]
            ax.plot(steps, values)
            if all(v > 0 for v in values) and max(values) > 10 * min(values):
                ax.set_yscale("log")
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.savefig(self.png, dpi=90)

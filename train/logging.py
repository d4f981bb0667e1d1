"""Run logs: a progress bar (clips/s, data-wait fraction), metrics.jsonl, TensorBoard scalars, PNG curves.

Only the main rank logs; on other ranks every method is a no-op. metrics.jsonl holds one JSON object per line,
{"phase": "train" | "val", "step": int, "epoch": int, <metric>: float, ...}.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tqdm import tqdm


class Progress:
    """A tqdm bar over optimiser steps that also measures clips/s and the fraction of wall time spent waiting for data.

    Args:
        total: last step of the run. initial: step it starts from. enabled: False on non-main ranks.
    """

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step",
                        dynamic_ncols=True, mininterval=1.0)
        self._start, self._wait, self._clips, self._steps = time.perf_counter(), 0.0, 0, 0

    def waited(self, seconds: float) -> None:
        """Add time the training loop spent blocked on the DataLoader."""
        self._wait += seconds

    def advance(self, clips: int) -> None:
        self._clips += clips
        self._steps += 1

    def flush(self, **shown: float) -> dict[str, float]:
        """Update the bar with the interval's throughput and `shown` values; return {clips_per_s, data_wait}."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rates = {"clips_per_s": self._clips / elapsed, "data_wait": self._wait / elapsed}
        self.bar.set_postfix({**{k: f"{v:.3g}" for k, v in shown.items()},
                              "clips/s": f"{rates['clips_per_s']:.1f}", "wait": f"{rates['data_wait']:.0%}"}, refresh=False)
        self.bar.update(self._steps)
        self._start, self._wait, self._clips, self._steps = time.perf_counter(), 0.0, 0, 0
        return rates

    def close(self) -> None:
        self.bar.close()


class RunLogger:
    """Appends metric records to RUN_DIR/metrics.jsonl and, when tensorboard is installed, to RUN_DIR/tb.

    Args:
        out_dir: the run directory. enabled: False on non-main ranks.
        resume_step: when resuming, records after this step (written by the killed run past its checkpoint) are dropped.
    """

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        if resume_step is None:
            self.path.write_text("")
        else:
            truncate_metrics(self.path, resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=resume_step)

    def log(self, phase: str, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"phase": phase, "step": step, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{phase}/{k}", float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the records up to `step` (inclusive)."""
    kept = [r for r in read_metrics(path) if r["step"] <= step]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in kept))


def plot_curves(metrics_path: Path, png_path: Path) -> None:
    """Plot loss and every accuracy over steps (train, val, and the monitor's kNN) into one PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    keys = sorted({k for r in records for k in r if k == "loss" or k.startswith(("acc", "knn"))})
    if not keys:
        return
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for phase, style in (("train", "-"), ("val", "o-"), ("monitor", "s-")):
            pts = [(r["step"], r[key]) for r in records if r["phase"] == phase and key in r]
            if pts:
                ax.plot(*zip(*pts), style, label=phase, markersize=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend()
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)

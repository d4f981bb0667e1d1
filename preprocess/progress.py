"""Progress of a long job over items (videos): tqdm on a terminal, plain lines every 10 s otherwise, or nothing."""
from __future__ import annotations

import sys
import time


class Progress:
    """tqdm on a terminal; plain lines every 10 s otherwise (logs, CI); nothing when quiet.

    Args:
        total: items the job will handle.
        label: what the job is ("extract ucf101"), the start of every line.
        quiet: print nothing.
        unit: the item's name ("video"), plural with an "s".
        bad: the word for items that went wrong ("failed", "damaged").
    """

    def __init__(self, total: int, label: str, quiet: bool, unit: str = "video", bad: str = "failed") -> None:
        self.total, self.label, self.quiet, self.unit, self.bad = total, label, quiet, unit, bad
        self.n, self.failures, self.t0, self.last = 0, 0, time.monotonic(), 0.0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, failed: bool = False) -> None:
        """One more item done; `failed` when it went wrong."""
        self.n += 1
        self.failures += bool(failed)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({self.bad: self.failures}, refresh=False)
        elif not self.quiet and (time.monotonic() - self.last >= 10 or self.n == self.total):
            self.last = time.monotonic()
            rate = self.n / max(self.last - self.t0, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else 0
            print(f"{self.label}: {self.n}/{self.total} {self.unit}s, {rate:.1f} {self.unit}s/s, ETA {eta:.0f} s, "
                  f"{self.failures} {self.bad}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

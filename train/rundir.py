"""A run folder: what it may hold, who may write it, and whether a command continues the run it holds.

A rerun of the same command continues its run (or says that it is finished); a folder holding a run with other
settings, another kind of run, or files that are not a run's is never written to; two processes never write one
run folder at once (a lock held for the whole run, released by the kernel even on kill -9).
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Union

from v3s.shared.config import FinetuneConfig, PretrainConfig, config_diff
from v3s.shared.paths import check_path
from v3s.shared.workspace import read_run_config

Config = Union[PretrainConfig, FinetuneConfig]
KIND_OF = {PretrainConfig: "v3s-pretrain", FinetuneConfig: "v3s-finetune"}
# What a run writes, and what evaluations of its checkpoints write beside them.
RUN_ENTRIES = frozenset({"last.pt", "best.pt", "config.json", "metrics.jsonl", "curves.png", "tb", "eval", "features"})


def check_run_folder(config: Config) -> bool:
    """Whether `config.out` holds this run's checkpoint to continue from (False: a new run starts there).

    Raises:
        ValueError: the folder is a file, holds files that are not a run's, holds another kind of run or a run
            with other settings, or --resume was asked with nothing to resume.
    """
    out = Path(config.out)
    last = out / "last.pt"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; a run folder is expected")
    if out.is_dir():
        strangers = sorted(p.name for p in out.iterdir() if p.name not in RUN_ENTRIES and not p.name.startswith("."))
        if strangers:
            raise ValueError(f"--out {str(out)!r} holds files that are not a training run's ({', '.join(strangers[:5])}); "
                             "choose an empty or new folder")
        old = read_run_config(out)
        checkpoints = last.exists() or (out / "best.pt").exists()
        if old is not None and checkpoints:
            if type(old) is not type(config):
                raise ValueError(f"--out {str(out)!r} holds a {KIND_OF[type(old)]} run; choose another --out for this "
                                 f"{KIND_OF[type(config)]} run")
            diff = config_diff(old, config)
            if diff:
                raise ValueError(f"--out {str(out)!r} holds a run with other settings ("
                                 + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                                 + "); rerun with its settings to continue it, or choose another --out")
        elif checkpoints:
            raise ValueError(f"--out {str(out)!r} holds checkpoints without their config.json; choose another --out")
        # A config without checkpoints is a run that stopped before its first checkpoint: it starts over.
    if config.resume and not last.is_file():
        raise ValueError(f"--resume: {last} does not exist; nothing to resume")
    return last.is_file()


class RunLock:
    """The run folder's lock, held by this process until `close()`.

    A POSIX record lock on the run's metrics.jsonl (a file every run has): unlike flock, such a lock is not
    inherited by the DataLoader workers forked from this process, so a run killed with -9 frees its folder at once
    instead of when its last worker notices.
    """

    def __init__(self, out: Path) -> None:
        check_path(out, "out-dir", "--out")
        self.file = open(out / "metrics.jsonl", "a")
        try:
            fcntl.lockf(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise ValueError(f"run folder {str(out)!r} is being written by another process (a second command on the "
                             "same --out); wait for it or choose another --out") from None

    def close(self) -> None:
        self.file.close()

"""The workspace: where a store and training runs go when a command is not told, so that what one command
produces, the next one finds.

The workspace is the folder named by the environment variable V3S_WORKSPACE, or the current folder. It holds
`v3s-store/` (the frame store of every extracted dataset) and `runs/` (one folder per training run, named from its
settings). Every default can be overridden by the command's own flag (--out, --store, --ckpt, ...).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

from .config import FinetuneConfig, PretrainConfig

ENV = "V3S_WORKSPACE"
STORE_NAME = "v3s-store"
RUNS_NAME = "runs"


def root() -> Path:
    """$V3S_WORKSPACE, or the current folder."""
    return Path(os.environ.get(ENV) or ".")


def default_store() -> Path:
    """WORKSPACE/v3s-store."""
    return root() / STORE_NAME


def runs_dir() -> Path:
    """WORKSPACE/runs."""
    return root() / RUNS_NAME


def pick_dataset(datasets: tuple[str, ...] | list[str], store: str | os.PathLike,
                 preferred: tuple[str, ...] = ("ucf101",)) -> tuple[str, str]:
    """(dataset, why) when --dataset is not given: a preferred one (the paper pretrains on UCF101) when the store
    holds it, else the store's only dataset.

    Raises:
        ValueError: the store holds no dataset, or several and none preferred (listing them).
    """
    for name in preferred:
        if name in datasets:
            return name, "the store holds it: the paper's choice"
    if len(datasets) == 1:
        return datasets[0], "the store's only dataset"
    if not datasets:
        raise ValueError(f"store {str(store)!r} holds no dataset yet; run `v3s-prep extract ROOT/` first")
    raise ValueError(f"store {str(store)!r} holds {len(datasets)} datasets ({', '.join(datasets)}) and none of "
                     f"{', '.join(preferred)}; choose one with --dataset")


def read_run_config(folder: str | os.PathLike) -> Union[PretrainConfig, FinetuneConfig, None]:
    """The config a run folder's config.json holds (as PretrainConfig or FinetuneConfig), None if it has none.

    Raises:
        ValueError: config.json exists but is not a v3s run config.
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable run config: {e}") from None
    for cls in (PretrainConfig, FinetuneConfig):
        try:
            return cls.from_dict(doc)
        except (ValueError, TypeError):
            continue
    raise ValueError(f"{path} is not the config of a v3s pretraining or finetuning run")


def latest_run(kind: type, runs: Path | None = None) -> Path | None:
    """best.pt of the most recent run whose config is a `kind` (PretrainConfig or FinetuneConfig) under
    WORKSPACE/runs, by the time best.pt was written; None when there is none."""
    runs = runs_dir() if runs is None else runs
    found = []
    for best in runs.glob("*/best.pt") if runs.is_dir() else ():
        try:
            config = read_run_config(best.parent)
        except ValueError:
            continue
        if isinstance(config, kind):
            found.append((best.stat().st_mtime_ns, str(best)))
    return Path(max(found)[1]) if found else None

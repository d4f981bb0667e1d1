"""What a training command chooses when it is not told: the store, the dataset, the run folder, the checkpoint to
finetune from, and the paper's validation-set and batch sizes, adapted where a small dataset cannot hold them.

Every choice is said in one line (`log`). Only defaults adapt: a value the user gave is used as given, and one
that cannot work is an error.
"""
from __future__ import annotations

from typing import Callable, Union

from v3s.shared import workspace
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.shared.paths import check_path
from v3s.shared.store import Store


Config = Union[PretrainConfig, FinetuneConfig]
Log = Callable[[str], None]


def resolve_source(config: Config, log: Log) -> tuple[Config, Store]:
    """Fill --store (the workspace's), --dataset (ucf101, else the only one) and --out (runs/<kind>-<dataset>-...)."""
    if config.store is None:
        config = config.replace(store=str(workspace.default_store()))
        log(f"store: {config.store} (the workspace's; --store to choose another)")
    store = Store(check_path(config.store, "dir", "--store"))
    if config.dataset is None:
        name, why = workspace.pick_dataset(store.datasets, config.store)
        config = config.replace(dataset=name)
        log(f"dataset: {name} ({why}; --dataset to choose another)")
    return config, store


def resolve_out(config: Config, log: Log) -> Config:
    """--out, else WORKSPACE/runs/pretrain-<dataset>-<backbone> or finetune-<dataset>-<backbone>-<v3s|scratch>
    (scratch-pytorch-init for --init-scheme pytorch, so that the two random baselines keep separate runs)."""
    if config.out is not None:
        return config
    if isinstance(config, PretrainConfig):
        name = f"pretrain-{config.dataset}-{config.backbone}"
    else:
        source = "v3s" if not config.scratch else "scratch" if config.init_scheme == "he" else \
            f"scratch-{config.init_scheme}-init"
        name = f"finetune-{config.dataset}-{config.backbone}-{source}"
    config = config.replace(out=str(workspace.runs_dir() / name))
    log(f"run folder: {config.out} (--out to choose another)")
    return config


def resolve_init(config: FinetuneConfig, log: Log) -> FinetuneConfig:
    """Without --init and --scratch, finetune from the latest pretraining run's best checkpoint."""
    if config.init or config.scratch:
        return config
    best = workspace.latest_run(PretrainConfig)
    if best is None:
        raise ValueError(f"give exactly one of --init PRETRAIN_CHECKPOINT and --scratch (no pretraining run was found "
                         f"in {workspace.runs_dir()} to start from; run `v3s-train pretrain` first)")
    log(f"init: {best} (the latest pretraining run; --init or --scratch to choose)")
    return config.replace(init=str(best))


def validation_videos(given: int | None, n_videos: int, paper: int | None, log: Log) -> int:
    """--val-videos, else the paper's count where at least half the list stays for training, else 10% of it."""
    if given is not None:
        return given
    if paper is not None and paper <= n_videos // 2:
        log(f"validation videos: {paper} (the paper's)")
        return paper
    n_val = max(1, round(0.1 * n_videos))
    why = f"the paper's {paper} would leave too few of the {n_videos} videos to train on" if paper else \
        f"10% of the {n_videos} videos"
    log(f"validation videos: {n_val} ({why}; --val-videos to choose)")
    return n_val


def batch_size(given: int | None, paper: int, n_train: int, world_size: int, log: Log) -> int:
    """--batch-size, else the paper's, reduced (to a multiple of the ranks) where fewer videos train."""
    if given is not None:
        return given
    if paper <= n_train:
        return paper
    adapted = max(world_size, n_train // world_size * world_size)
    log(f"batch size: {adapted} (the paper's {paper} is more than the {n_train} training videos; --batch-size to "
        "choose)")
    return adapted

"""What every evaluation command resolves from its options: the model, the clip geometry, where outputs and the
feature cache go, and how features are extracted."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from v3s.shared import workspace
from v3s.shared.checkpoint import (LoadedModel, RandomInit, is_v3s_checkpoint, load_model, load_peer_model,
                                   peer_state_dict, random_model, read_weights_file)
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.shared.models import check_clip_shape
from v3s.shared.models.peers import PEER_BACKBONES
from v3s.shared.paths import check_path
from v3s.shared.runtime import configure_backends, default_workers, resolve_device
from v3s.shared.store import Store, VideoInfo

from .cache import cached_features, default_cache_dir, model_identity
from .features import ClipSpec, Features

# Where a random-init model's outputs go when --out / --cache-dir are not given (it has no checkpoint folder).
RANDOM_NAME = "v3s-eval-random"
# The run whose checkpoint an evaluation takes when --ckpt is not given.
DEFAULT_RUN = {"v3s-finetune": FinetuneConfig, "v3s-pretrain": PretrainConfig}
Log = Callable[[str], None]


def _say(log: Log | None, line: str) -> None:
    if log is not None:
        log(line)


def resolve_model(cfg: Any, kind: str | None = None, log: Log | None = None,
                  default: str = "v3s-pretrain") -> tuple[Any, LoadedModel]:
    """(cfg with --ckpt filled in, the model): the checkpoint's network or a random initialisation (exactly one).

    Without --ckpt and --random, the latest run of the wanted kind in the workspace's runs/ is taken, and said.
    A --ckpt that is not a v3s checkpoint but a peer's released state dict (VCOP, PRP, VCP, PacePred) is read
    through the key maps of v3s.shared.models.peers when cfg has the ModelSource options; --backbone and --width
    then say what it holds.

    Args:
        cfg: a config with the `ModelSource` options (or at least `ckpt`).
        kind: "v3s-pretrain" / "v3s-finetune" to require one (None: either).
        log: told what was chosen.
        default: the kind of run whose latest checkpoint is taken without --ckpt.
    """
    if getattr(cfg, "cache_dir", None):   # before any work, as the other paths
        check_path(cfg.cache_dir, "out-dir", "--cache-dir")
    random = getattr(cfg, "random", False)
    if cfg.ckpt and random:
        raise ValueError("give exactly one of --ckpt CHECKPOINT and --random (with --backbone, --width, --seed)")
    if random:
        if not cfg.backbone:
            raise ValueError("--random needs --backbone NAME (and optionally --width, --seed)")
        return cfg, random_model(RandomInit(cfg.backbone, 1.0 if cfg.width is None else cfg.width, cfg.seed,
                                            cfg.input_mode, cfg.init_scheme))
    if getattr(cfg, "init_scheme", "he") != "he":
        raise ValueError(f"--init-scheme {cfg.init_scheme} applies with --random only: a checkpoint's weights are "
                         f"trained (its finetuning run's --init-scheme is in its config)")
    if not cfg.ckpt:
        wanted = kind or default
        best = workspace.latest_run(DEFAULT_RUN[wanted])
        if best is None:
            raise ValueError(f"no --ckpt given and no {wanted.replace('v3s-', '')} run in {workspace.runs_dir()}/ to "
                             f"take it from; pass --ckpt CHECKPOINT" + (" or --random" if hasattr(cfg, "random") else ""))
        _say(log, f"ckpt: {best} (the latest {wanted.replace('v3s-', '')} run; --ckpt to choose another)")
        cfg = cfg.replace(ckpt=str(best))
    path = check_path(cfg.ckpt, "file", "--ckpt")
    contents = read_weights_file(path)
    if not is_v3s_checkpoint(contents) and hasattr(cfg, "backbone"):
        return cfg, _peer_model(cfg, path, contents, kind)
    loaded = load_model(path, kind=kind, contents=contents)
    for name in ("backbone", "width"):
        given = getattr(cfg, name, None)
        if given is not None and given != getattr(loaded.config, name):
            raise ValueError(f"--{name} {given!r} contradicts checkpoint {cfg.ckpt}'s {name} "
                             f"{getattr(loaded.config, name)!r}; leave --{name} out with --ckpt")
    return cfg, loaded


def _peer_model(cfg: Any, path: Path, contents: Any, kind: str | None) -> LoadedModel:
    """A peer's released weights (a state dict without configuration): --backbone and --width say what it holds."""
    if kind is not None:
        raise ValueError(f"--ckpt {path} is not a v3s checkpoint; a {kind!r} checkpoint is needed here")
    if peer_state_dict(contents) is None:
        load_model(path, contents=contents)  # raises the message that says what the file is
    if cfg.backbone is None or cfg.width is None:
        raise ValueError(f"--ckpt {path} is not a v3s checkpoint but a state dict with no configuration (a peer's "
                         f"released weights?): say what network it holds with --backbone ({', '.join(PEER_BACKBONES)}) "
                         f"and --width (1.0 for the peers' published networks)")
    return load_peer_model(path, cfg.backbone, cfg.width, getattr(cfg, "input_mode", "rgb"), contents=contents)


def resolve_store(cfg: Any, loaded: LoadedModel | None, log: Log | None = None) -> tuple[Any, Store]:
    """(cfg with --store and --dataset filled in, the opened store): the workspace's store, and the dataset the
    checkpoint was trained on (a random initialisation: ucf101, else the store's only dataset)."""
    if cfg.store is None:
        cfg = cfg.replace(store=str(workspace.default_store()))
        _say(log, f"store: {cfg.store} (the workspace's; --store to choose another)")
    store = Store(check_path(cfg.store, "dir", "--store"))
    if getattr(cfg, "dataset", "") is None:
        trained_on = getattr(loaded.config, "dataset", None) if loaded is not None else None
        if trained_on in store.datasets:
            name, why = trained_on, "the checkpoint's"
        else:
            name, why = workspace.pick_dataset(store.datasets, cfg.store)
        cfg = cfg.replace(dataset=name)
        _say(log, f"dataset: {name} ({why}; --dataset to choose another)")
    return cfg, store


# The paper's resize, for a video decoded for a model whose training store cannot be read (or a random model).
DEFAULT_SIZE = (128, 171)


def trained_frame_size(loaded: LoadedModel, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) to decode a raw video to: `size` (--size), else the frame size of the store the checkpoint
    was trained on, else DEFAULT_SIZE."""
    if size is not None:
        return size
    try:
        settings = Store(loaded.config.store).settings(loaded.config.dataset)
        return int(settings["height"]), int(settings["width"])
    except (AttributeError, TypeError, KeyError, ValueError, OSError):  # a random model, or the store is gone
        return DEFAULT_SIZE


def describe_model(loaded: LoadedModel) -> dict[str, Any]:
    """What results.json says about the model: kind, network, checkpoint, and what identifies its weights."""
    return {**loaded.describe(), **model_identity(loaded)}


def clip_geometry(cfg: Any, loaded: LoadedModel) -> dict[str, int]:
    """ClipSpec's clip_len, crop and frame_step: the options where given, else the network's own."""
    own = loaded.clip_geometry()
    geometry = {"clip_len": getattr(cfg, "clip_len", None) or own["clip_len"],
                "crop": getattr(cfg, "clip_size", None) or own["clip_size"],
                "frame_step": getattr(cfg, "frame_step", None) or own["frame_step"]}
    check_clip_shape(loaded.config.backbone, geometry["clip_len"], geometry["crop"])
    return geometry


def _random_base(loaded: LoadedModel) -> Path:
    c = loaded.config
    scheme = "" if c.init_scheme == "he" else f"-{c.init_scheme}-init"  # he: the folder names it always had
    return workspace.root() / RANDOM_NAME / f"{c.backbone}-w{c.width:g}-{c.input_mode}-seed{c.seed}{scheme}"


def output_dir(cfg: Any, loaded: LoadedModel, name: str) -> Path:
    """--out, else CKPT_DIR/eval/<name> (WORKSPACE/v3s-eval-random/<model>/eval/<name> for a random
    initialisation), created and checked writable before any work is done."""
    if getattr(cfg, "out", None):
        return check_path(cfg.out, "out-dir", "--out")
    base = loaded.path.resolve().parent if loaded.path is not None else _random_base(loaded)
    return check_path(base / "eval" / name, "out-dir", "results folder")


def batch_size_for(cfg: Any, device: torch.device) -> int:
    """--batch-size, else 64 clips per forward pass on a GPU and 16 on the CPU."""
    return cfg.batch_size or (64 if device.type == "cuda" else 16)


@dataclass
class Extractor:
    """How a command extracts features (device, batch, workers, cache): never what the features are."""

    device: torch.device
    batch_size: int
    workers: int
    progress: bool
    use_cache: bool
    cache_dir: Path | None
    log: Callable[[str], None] | None

    @classmethod
    def for_model(cls, cfg: Any, loaded: LoadedModel, log: Callable[[str], None] | None = None) -> "Extractor":
        """Put the model on cfg.device; the cache goes to --cache-dir, else beside the checkpoint (random:
        WORKSPACE/v3s-eval-random/<model>/features)."""
        device = resolve_device(cfg.device)
        configure_backends(device)
        loaded.model.to(device)
        cache_dir = cfg.cache_dir or default_cache_dir(loaded) or _random_base(loaded) / "features"
        return cls(device=device, batch_size=batch_size_for(cfg, device),
                   workers=default_workers() if cfg.workers is None else cfg.workers, progress=not cfg.quiet,
                   use_cache=not cfg.no_cache, cache_dir=Path(cache_dir), log=log)

    def features(self, loaded: LoadedModel, forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
                 outputs: Sequence[str], store: Store, dataset: str, videos: Sequence[VideoInfo], spec: ClipSpec, *,
                 what: Mapping[str, Any], clip_taps: Sequence[str] = ()) -> Features:
        """`cached_features` with this extractor's settings."""
        return cached_features(loaded, forward, outputs, store, dataset, videos, spec, what=what, clip_taps=clip_taps,
                               cache_dir=self.cache_dir, use_cache=self.use_cache, device=self.device,
                               batch_size=self.batch_size, workers=self.workers, progress=self.progress, log=self.log)

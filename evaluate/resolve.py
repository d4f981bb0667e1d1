"""What every evaluation command resolves from its options: the model, the clip geometry, where outputs and the
feature cache go, and how features are extracted."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from v3s.shared.checkpoint import LoadedModel, RandomInit, load_model, random_model
from v3s.shared.runtime import default_workers, resolve_device
from v3s.shared.store import Store, VideoInfo

from .cache import cached_features, default_cache_dir, model_identity
from .features import ClipSpec, Features

# Where a random-init model's outputs go when --out / --cache-dir are not given (it has no checkpoint folder).
RANDOM_ROOT = Path("v3s-eval-random")


def resolve_model(cfg: Any, kind: str | None = None) -> LoadedModel:
    """The checkpoint's network, or a random initialisation (cfg.random with backbone / width / seed): exactly one.

    Args:
        cfg: a config with the `ModelSource` options (or at least `ckpt`).
        kind: "v3s-pretrain" / "v3s-finetune" to require one.
    """
    random = getattr(cfg, "random", False)
    if bool(cfg.ckpt) == random:
        raise ValueError("give exactly one of --ckpt CHECKPOINT and --random (with --backbone, --width, --seed)")
    if random:
        if not cfg.backbone:
            raise ValueError("--random needs --backbone NAME (and optionally --width, --seed)")
        return random_model(RandomInit(cfg.backbone, 1.0 if cfg.width is None else cfg.width, cfg.seed, cfg.input_mode))
    loaded = load_model(cfg.ckpt, kind=kind)
    for name in ("backbone", "width"):
        given = getattr(cfg, name, None)
        if given is not None and given != getattr(loaded.config, name):
            raise ValueError(f"--{name} {given!r} contradicts checkpoint {cfg.ckpt}'s {name} "
                             f"{getattr(loaded.config, name)!r}; leave --{name} out with --ckpt")
    return loaded


def describe_model(loaded: LoadedModel) -> dict[str, Any]:
    """What results.json says about the model: kind, network, checkpoint, and what identifies its weights."""
    return {**loaded.describe(), **model_identity(loaded)}


def clip_geometry(cfg: Any, loaded: LoadedModel) -> dict[str, int]:
    """ClipSpec's clip_len, crop and frame_step: the options where given, else the network's own."""
    own = loaded.clip_geometry()
    return {"clip_len": getattr(cfg, "clip_len", None) or own["clip_len"],
            "crop": getattr(cfg, "clip_size", None) or own["clip_size"],
            "frame_step": getattr(cfg, "frame_step", None) or own["frame_step"]}


def _random_base(loaded: LoadedModel) -> Path:
    c = loaded.config
    return RANDOM_ROOT / f"{c.backbone}-w{c.width:g}-{c.input_mode}-seed{c.seed}"


def output_dir(cfg: Any, loaded: LoadedModel, name: str) -> Path:
    """--out, else CKPT_DIR/eval/<name> (RANDOM_ROOT/<model>/eval/<name> for a random initialisation)."""
    if getattr(cfg, "out", None):
        return Path(cfg.out)
    base = loaded.path.resolve().parent if loaded.path is not None else _random_base(loaded)
    return base / "eval" / name


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
        RANDOM_ROOT/<model>/features)."""
        device = resolve_device(cfg.device)
        loaded.model.to(device)
        cache_dir = cfg.cache_dir or default_cache_dir(loaded) or _random_base(loaded) / "features"
        return cls(device=device, batch_size=cfg.batch_size,
                   workers=default_workers() if cfg.workers is None else cfg.workers, progress=not cfg.quiet,
                   use_cache=not cfg.no_cache, cache_dir=Path(cache_dir), log=log)

    def features(self, loaded: LoadedModel, forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
                 outputs: Sequence[str], store: Store, dataset: str, videos: Sequence[VideoInfo], spec: ClipSpec, *,
                 what: Mapping[str, Any], clip_taps: Sequence[str] = ()) -> Features:
        """`cached_features` with this extractor's settings."""
        return cached_features(loaded, forward, outputs, store, dataset, videos, spec, what=what, clip_taps=clip_taps,
                               cache_dir=self.cache_dir, use_cache=self.use_cache, device=self.device,
                               batch_size=self.batch_size, workers=self.workers, progress=self.progress, log=self.log)

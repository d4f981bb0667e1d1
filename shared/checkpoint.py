"""Training checkpoints: the on-disk dict format, atomic writes, safe loads, and rebuilding the model from one.

A checkpoint is a plain dict (format_version 1, see docs/training.md):
  kind            "v3s-pretrain" | "v3s-finetune"
  format_version  1
  config          the resolved PretrainConfig / FinetuneConfig as a dict (backbone, width, clip_len, clip_size,
                  dataset, split, label_space or n_classes + classes, ...)
  model           state_dict of a `VideoModel` (keys "backbone.*" and "head.*")
  optimizer, scheduler, scaler   their state_dicts
  epoch, step     the epoch in progress and the global optimiser step reached (the run continues from here)
  rng             {"torch", "cuda" (list, may be empty), "numpy", "python", "loader"}: RNG states as tensors,
                  lists and ints only, so that `torch.load(weights_only=True)` can read them
  metrics         the last validation metrics; best: the best validation score so far
  code_version    {"version": package version, "commit": git commit or None}
Loading uses `torch.load(weights_only=True)`: a checkpoint file cannot run code.
"""
from __future__ import annotations

import dataclasses
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .config import FinetuneConfig, PretrainConfig
from .labels import LabelSpace
from .models import ClassifierHead, V3SHead, VideoModel, build_backbone
from .models.peers import map_peer_state

FORMAT_VERSION = 1
KINDS = ("v3s-pretrain", "v3s-finetune")


def save_checkpoint(ckpt: dict, path: Union[str, Path]) -> None:
    """Write `ckpt` to `path` atomically (`atomic_write`, folder fsynced too)."""
    path = Path(path)
    _check_kind(ckpt, path)
    atomic_write(path, lambda f: torch.save(ckpt, f), sync_dir=True)


def load_checkpoint(path: Union[str, Path], kind: str | None = None) -> dict:
    """Read a checkpoint to the CPU with `weights_only=True` and check its kind and format.

    Always to the CPU: the RNG states must stay CPU ByteTensors (`set_rng_state`), and the model and optimizer
    move their own tensors to the device when they load them, so a run saved on a GPU resumes on a CPU and back.

    Args:
        path: the .pt file.
        kind: the required kind ("v3s-pretrain" / "v3s-finetune"), or None for either.
    Raises:
        FileNotFoundError: no such file. ValueError: not a readable v3s checkpoint, or of another kind.
    """
    path = Path(path)
    ckpt = read_weights_file(path)
    _check_kind(ckpt, path)
    _check_wanted_kind(ckpt, path, kind)
    return ckpt


def _check_wanted_kind(ckpt: dict, path: Path, kind: str | None) -> None:
    if kind is not None and ckpt["kind"] != kind:
        raise ValueError(f"checkpoint {path} is a {ckpt['kind']!r} checkpoint; a {kind!r} checkpoint is needed here")


def read_weights_file(path: Union[str, Path]) -> Any:
    """The contents of a .pt/.pth file, read to the CPU with `torch.load(weights_only=True)`: tensors, numbers,
    strings and containers only, so a file cannot run code. A file that pickles Python objects (a whole model
    saved with `torch.save(model)`) is refused with a message naming the object's class.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or not plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files, with advice on pickling
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found:
            raise ValueError(f"{path} holds a pickled Python object ({found.group(1)}), not plain tensors; it is not "
                             f"loaded because unpickling could run code. Load it with the code that wrote it and save "
                             f"its weights: torch.save(model.state_dict(), 'weights.pth')") from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"checkpoint {path} cannot be read as a v3s checkpoint (truncated, or not a file written by "
                         f"torch.save of tensors): {first}") from None


def is_v3s_checkpoint(contents: Any) -> bool:
    """True when a file's contents (`read_weights_file`) are a v3s checkpoint dict (of any format version)."""
    return isinstance(contents, dict) and contents.get("kind") in KINDS


def _check_kind(ckpt: Any, path: Path) -> None:
    if not is_v3s_checkpoint(ckpt):
        state = peer_state_dict(ckpt)
        if state is not None:
            raise ValueError(f"{path} is not a v3s checkpoint but a bare state dict ({len(state)} tensors, e.g. "
                             f"{next(iter(state))!r}): a peer's released backbone weights, with no head and no "
                             f"configuration, are read by the feature commands that take --backbone and --width "
                             f"(e.g. retrieval, aslan); this one needs a v3s checkpoint")
        got = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a v3s checkpoint (kind {got!r}; expected one of {KINDS})")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format_version {ckpt.get('format_version')!r}; this code reads {FORMAT_VERSION}")


def config_from_checkpoint(ckpt: dict) -> Union[PretrainConfig, FinetuneConfig]:
    """The resolved config stored in a checkpoint, as its dataclass."""
    cls = PretrainConfig if ckpt["kind"] == "v3s-pretrain" else FinetuneConfig
    return cls.from_dict(ckpt["config"])


def build_network(config: Union[PretrainConfig, FinetuneConfig]) -> VideoModel:
    """A freshly initialised VideoModel for a resolved config (V3S heads for pretraining, a classifier for finetuning)."""
    backbone = build_backbone(config.backbone, width=config.width, input_mode=config.input_mode or "rgb",
                              init_scheme=getattr(config, "init_scheme", "he"))
    if isinstance(config, PretrainConfig):
        space = LabelSpace.from_dict(config.label_space)
        head = V3SHead(backbone.feature_dim, space.n_spatial, space.n_temporal, config.dropout)
    else:
        head = ClassifierHead(backbone.feature_dim, config.n_classes, config.dropout)
    return VideoModel(backbone, head)


@dataclass(frozen=True)
class RandomInit:
    """A randomly initialised backbone (the "random" rows of the tables): what rebuilds it exactly.

    Attributes:
        backbone, width, input_mode: the network.
        seed: torch seed of the initialisation; the same fields give the same weights (on one torch release).
        init_scheme: "he" (the project's initialisation) or "pytorch" (torch's module defaults, as the
            VCOP-family random baselines); see `v3s.shared.models.base.init_weights`.
    """

    backbone: str
    width: float = 1.0
    seed: int = 0
    input_mode: str = "rgb"
    init_scheme: str = "he"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LoadedModel:
    """A network rebuilt for evaluation (eval mode, on the CPU) and what it was built from.

    Attributes:
        model: backbone + head; a random initialisation has no trained head (nn.Identity).
        kind: "v3s-pretrain", "v3s-finetune", "random" or "peer" (a peer's released backbone weights).
        config: the checkpoint's resolved PretrainConfig / FinetuneConfig, the RandomInit, or the PeerWeights.
        path: the checkpoint file (None for a random initialisation).
        step: the optimiser step the checkpoint was written at (None for a random initialisation).
    """

    model: VideoModel
    kind: str
    config: Union[PretrainConfig, FinetuneConfig, RandomInit, "PeerWeights"]
    path: Path | None = None
    step: int | None = None

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    def clip_geometry(self) -> dict[str, int]:
        """clip_len, clip_size and frame_step the network was trained with (a random initialisation and a
        pretraining run, which has no frame step, take the finetuning defaults)."""
        return {name: getattr(self.config, name, None) or _FINETUNE_DEFAULTS[name]
                for name in ("clip_len", "clip_size", "frame_step")}

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for results files."""
        d = {"kind": self.kind, "backbone": self.config.backbone, "width": self.config.width,
             "input_mode": self.config.input_mode}
        if self.path is not None:
            d["checkpoint"] = str(self.path)
        else:
            d["seed"] = self.config.seed
            d["init_scheme"] = self.config.init_scheme
        if self.kind == "peer":
            d.update(key_format=self.config.key_format, heads_dropped=list(self.config.heads_dropped))
        return d


_FINETUNE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}


def load_model(path: Union[str, Path], kind: str | None = None, contents: Any = None) -> LoadedModel:
    """Load a v3s checkpoint and rebuild its network, with errors that say what does not fit.

    Args:
        path: a checkpoint written by v3s-train (last.pt / best.pt).
        kind: "v3s-pretrain" / "v3s-finetune" to require one, None for either.
        contents: the file's contents when the caller has read them already (`read_weights_file`).
    Raises:
        FileNotFoundError: no such file. ValueError: not a v3s checkpoint, the wrong kind, or weights that do
            not load into the network its config describes.
    """
    path = Path(path)
    if contents is None:
        ckpt = load_checkpoint(path, kind=kind)
    else:
        ckpt = contents
        _check_kind(ckpt, path)
        _check_wanted_kind(ckpt, path, kind)
    try:
        config = config_from_checkpoint(ckpt)
        model = build_network(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"checkpoint {path}: its config does not describe a network: {e}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()
        raise ValueError(f"checkpoint {path}: weights do not load into a {config.backbone!r} width {config.width} "
                         f"model (wrong backbone or width in its config?): {' '.join(first)[:600]}") from None
    return LoadedModel(model=model.eval(), kind=ckpt["kind"], config=config, path=path, step=ckpt.get("step"))


def random_model(init: RandomInit) -> LoadedModel:
    """Build a random initialisation, leaving torch's global generator as it was."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(init.seed)
        net = build_backbone(init.backbone, width=init.width, input_mode=init.input_mode,
                             init_scheme=init.init_scheme)
    finally:
        torch.random.set_rng_state(state)
    return LoadedModel(model=VideoModel(net, nn.Identity()).eval(), kind="random", config=init)


# ---- a peer's released weights (VCOP, PRP, VCP, PacePred): a bare state dict under their names ----------------


@dataclass(frozen=True)
class PeerWeights:
    """What a peer's weight file holds: the network the user named (the file carries no configuration), the
    naming its keys follow (v3s.shared.models.peers.KEY_FORMATS) and the head modules that were set aside.
    """

    backbone: str
    width: float = 1.0
    input_mode: str = "rgb"
    key_format: str = ""
    heads_dropped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "heads_dropped": list(self.heads_dropped)}


# A container entry holding the state dict (PacePred saves {"epoch", "state_dict", "opt_dict"}).
STATE_DICT_ENTRY = "state_dict"


def peer_state_dict(contents: Any) -> dict[str, torch.Tensor] | None:
    """The state dict in a file's contents: the contents themselves when every value is a tensor, or their
    "state_dict" entry when that is; None otherwise."""
    def tensors(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if tensors(contents):
        return contents
    if isinstance(contents, dict) and tensors(contents.get(STATE_DICT_ENTRY)):
        return contents[STATE_DICT_ENTRY]
    return None


def load_peer_model(path: Union[str, Path], backbone: str, width: float, input_mode: str = "rgb",
                    contents: Any = None) -> LoadedModel:
    """Rebuild a peer's released backbone (R3D, R(2+1)D, C3D) from its state dict through the explicit key maps.

    Args:
        path: the .pth file: a bare state dict (possibly under "module." / "base_network."), or a dict with a
            "state_dict" entry.
        backbone, width, input_mode: the network it holds (the file does not say).
        contents: the file's contents when the caller has read them already (`read_weights_file`).
    Raises:
        FileNotFoundError: no such file. ValueError: not a state dict, a backbone no naming covers, keys left
            unmatched either way, or another shape (the message lists the keys).
    """
    path = Path(path)
    contents = read_weights_file(path) if contents is None else contents
    state = peer_state_dict(contents)
    if state is None:
        top = sorted(map(str, contents))[:12] if isinstance(contents, dict) else type(contents).__name__
        raise ValueError(f"{path} does not hold a state dict (top level: {top}); expected a mapping of names to "
                         f"tensors, or one under {STATE_DICT_ENTRY!r}")
    net = build_backbone(backbone, width=width, input_mode=input_mode)
    try:
        mapped, key_format, heads = map_peer_state(state, net, backbone)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    net.load_state_dict(mapped, strict=True)
    config = PeerWeights(backbone, float(width), input_mode, key_format, tuple(heads))
    return LoadedModel(model=VideoModel(net, nn.Identity()).eval(), kind="peer", config=config, path=path)


def rng_state(loader: dict) -> dict:
    """Every RNG state of this process as tensors, lists and ints (readable with weights_only=True).

    Args:
        loader: how the data loader's order is derived, e.g. {"seed": 0, "epoch": 3, "position": 12}.
    """
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _to_lists(random.getstate()),
        "loader": dict(loader),
    }


def set_rng_state(state: dict) -> None:
    """Restore the RNG states written by `rng_state` (CUDA ones only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def code_version() -> dict:
    """The installed package version and, when run from a git checkout, its commit."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("v3s")
    except PackageNotFoundError:
        v = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"version": v, "commit": commit}

"""Run configurations of the training stage: one frozen dataclass per command, written beside the checkpoints.

Each field is one command-line option of `v3s-train` (same name, dashes for underscores); fields marked
`cli=False` in their metadata are not options but are filled in when the run resolves its inputs (the label
space of a pretraining run, the classes of a finetuning run). `from_dict` refuses unknown keys, so a config
file or checkpoint from a different code version fails loudly instead of being half-read.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from .models.base import INPUT_MODES

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("cosine", "plateau", "constant")

# Fields that may differ between a run and its --resume: they change where and how fast it runs, not what
# it computes (workers and device only change speed; the data order and augmentation draws do not depend on them).
RESUMABLE_CHANGES = frozenset({"resume", "workers", "device", "compile", "log_every", "ckpt_every", "out"})


def _opt(default: Any, help: str, *, cli: bool = True, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field carrying its command-line help text (read by train/cli.py, which owns click)."""
    return field(default=default, metadata={"help": help, "cli": cli, "choices": choices})


def _req(help: str) -> Any:
    return field(metadata={"help": help, "cli": True, "choices": None, "required": True})


# Options that mean the same in both commands, defined once so that their defaults and help cannot drift apart.
_SHARED: dict[str, dict[str, Any]] = {
    "out": {"help": "Run directory: last.pt, best.pt, config.json, metrics.jsonl, curves.png.", "required": True},
    "clip_len": {"default": 16, "help": "Frames per clip (paper: 16)."},
    "momentum": {"default": 0.9, "help": "SGD momentum (paper: 0.9)."},
    "weight_decay": {"default": 5e-4, "help": "SGD weight decay (paper silent; VCOP's 5e-4)."},
    "lr_schedule": {"default": "cosine", "choices": LR_SCHEDULES,
                    "help": "Learning-rate schedule (paper silent): cosine per step, plateau (VCOP), constant."},
    "max_steps": {"default": None, "help": "Stop after this many optimiser steps (short runs on the same code path)."},
    "workers": {"default": None, "help": "DataLoader worker processes per rank (default: min(8, CPU cores))."},
    "device": {"default": "auto", "choices": DEVICES, "help": "auto (CUDA when present), cpu or cuda."},
    "precision": {"default": "auto", "choices": PRECISIONS,
                  "help": "auto (bf16 on GPU, fp16 where bf16 is missing, fp32 on CPU), bf16, fp16, fp32."},
    "compile": {"default": False, "help": "Wrap the model in torch.compile."},
    "channels_last": {"default": False, "help": "Use the channels_last_3d memory format."},
    "ckpt_every": {"default": 500, "help": "Also write last.pt every this many steps (end of epoch always writes)."},
    "log_every": {"default": 20, "help": "Steps between progress-bar and TensorBoard updates."},
    "resume": {"default": False, "help": "Continue the run in --out from its last.pt, exactly."},
}


def _shared(name: str) -> Any:
    """A fresh field for an option that both commands have (see `_SHARED`)."""
    spec = dict(_SHARED[name])
    return _req(spec["help"]) if spec.pop("required", False) else _opt(**spec)


class _RunConfig:
    """What both configs do with their fields: normalise and check them, and round-trip through a plain dict.

    Fields listed in `_tuples` are tuples in the config and lists in its dict (config.json, checkpoints).
    """

    _tuples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", str(self.split))  # split ids are strings in the store ("1", not 1)
        _check_ranges(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in self._tuples:
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        d = dict(d)
        for name in cls._tuples:
            if d.get(name) is not None:
                d[name] = tuple(d[name])
        return _from_dict(cls, d)

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PretrainConfig(_RunConfig):
    """V3S pretraining: paper section 4.1.2 defaults (SGD lr 0.01, momentum 0.9, batch 32, 300 epochs, 800 val videos)."""

    store: str = _req("HDF5 frame store made by `v3s-prep extract`.")
    dataset: str = _req("Dataset name inside the store (e.g. ucf101).")
    out: str = _shared("out")
    split: str = _opt("1", "Split id whose train list is used (paper: UCF101 split 1).")
    backbone: str = _opt("r21d", "Backbone name (r21d, r3d, r3d18, c3d, s3dg).")
    width: float = _opt(1.0, "Channel width multiplier of the backbone (1.0 = the paper's networks).")
    input_mode: str = _opt("rgb", "Network input: rgb frames (the paper) or diff, differences of consecutive frames "
                           "(the CPU demo's choice, docs/demo.md).", choices=INPUT_MODES)
    transforms: str = _opt("all", "Label space: a preset (all, ss, sp, ss+sp, ts, tp, ts+tp, ...) or a comma list of ss,sp,ts,tp.")
    clip_len: int = _shared("clip_len")
    clip_size: int = _opt(112, "Side of the square crop fed to the network (paper: 112).")
    canvas: int = _opt(224, "Frames are resized to a canvas x canvas square before the V3S warp (paper: 224; "
                       "S3D-G: 256).")
    crop: int = _opt(112, "Side of the crop taken from the warped canvas, then resized to --clip-size (paper: 112; "
                     "S3D-G: 224). crop / canvas is the share of the frame a pretext clip shows.")
    epochs: int = _opt(300, "Epochs over the pretraining videos (paper: 300).")
    batch_size: int = _opt(32, "Global batch size, split evenly over DDP ranks (paper: 32).")
    lr: float = _opt(0.01, "Initial SGD learning rate (paper: 0.01; 0.005 for R3D).")
    momentum: float = _shared("momentum")
    weight_decay: float = _shared("weight_decay")
    lr_schedule: str = _shared("lr_schedule")
    dropout: float = _opt(0.5, "Dropout before the heads (paper silent; VCOP's 0.5).")
    clip_grad: float = _opt(0.0, "Clip the gradient norm to this value; 0 disables (the paper does not clip).")
    val_videos: int = _opt(800, "Validation videos drawn by seed from the train list (paper: 800 for UCF101).")
    max_steps: Optional[int] = _shared("max_steps")
    workers: Optional[int] = _shared("workers")
    device: str = _shared("device")
    precision: str = _shared("precision")
    compile: bool = _shared("compile")
    channels_last: bool = _shared("channels_last")
    seed: int = _opt(0, "Seed of the validation draw, data order, augmentation and initialisation.")
    ckpt_every: int = _shared("ckpt_every")
    log_every: int = _shared("log_every")
    resume: bool = _shared("resume")
    label_space: Optional[dict] = _opt(None, "Resolved LabelSpace.to_dict() of --transforms.", cli=False)


@dataclass(frozen=True)
class FinetuneConfig(_RunConfig):
    """Supervised finetuning for action recognition: paper section 4.3 (lr 0.001, momentum 0.9, batch 8, crop 112, flip)."""

    store: str = _req("HDF5 frame store made by `v3s-prep extract` (frames resized to 128x171 = the paper's resize).")
    dataset: str = _req("Dataset name inside the store (ucf101, hmdb51, ...).")
    out: str = _shared("out")
    split: str = _opt("1", "Split id: its train list is trained on (minus validation videos).")
    init: Optional[str] = _opt(None, "Pretraining checkpoint (RUN_DIR/best.pt) whose backbone initialises the model.")
    scratch: bool = _opt(False, "Random initialisation (the 'Random' rows of paper Table 2) instead of --init.")
    backbone: Optional[str] = _opt(None, "Backbone name; with --scratch only (with --init it comes from the checkpoint).")
    width: Optional[float] = _opt(None, "Backbone width; with --scratch only (default 1.0).")
    input_mode: Optional[str] = _opt(None, "Network input, rgb or diff; with --scratch only (default rgb; with --init "
                                     "it comes from the checkpoint).", choices=INPUT_MODES)
    clip_len: int = _shared("clip_len")
    frame_step: int = _opt(1, "Take every k-th frame (the clip then spans (clip_len - 1) k + 1 frames; paper: 1, "
                           "consecutive frames). Evaluation of the checkpoint reads clips the same way.")
    clip_size: int = _opt(112, "Side of the random crop (paper: 112).")
    epochs: int = _opt(160, "Finetuning epochs (paper: stops after 160).")
    batch_size: int = _opt(8, "Global batch size, split evenly over DDP ranks (paper: 8).")
    lr: float = _opt(0.001, "Initial SGD learning rate (paper: 0.001 for C3D, R3D, R(2+1)D).")
    backbone_lr_mult: float = _opt(1.0, "Backbone learning rate = lr x this (1.0: the paper's uniform rate).")
    momentum: float = _shared("momentum")
    weight_decay: float = _shared("weight_decay")
    lr_schedule: str = _shared("lr_schedule")
    dropout: float = _opt(0.5, "Dropout before the classifier (paper silent; VCOP's 0.5).")
    no_flip: bool = _opt(False, "No horizontal flips (for labels that depend on left/right, e.g. the synthetic set).")
    clip_grad: float = _opt(0.0, "Clip the gradient norm to this value; 0 disables.")
    val_videos: Optional[int] = _opt(None, "Held-out train videos for model selection (default 800 UCF101, 400 HMDB51, else 10%).")
    train_per_class: Optional[int] = _opt(None, "Train on this many labelled videos per class, drawn by seed (default: all).")
    max_steps: Optional[int] = _shared("max_steps")
    workers: Optional[int] = _shared("workers")
    device: str = _shared("device")
    precision: str = _shared("precision")
    compile: bool = _shared("compile")
    channels_last: bool = _shared("channels_last")
    seed: int = _opt(0, "Seed of the validation and subset draws, data order, augmentation and head initialisation.")
    ckpt_every: int = _shared("ckpt_every")
    log_every: int = _shared("log_every")
    resume: bool = _shared("resume")
    n_classes: Optional[int] = _opt(None, "Resolved number of classes.", cli=False)
    classes: Optional[tuple] = _opt(None, "Resolved class names, in label order.", cli=False)

    _tuples = ("classes",)


_AT_LEAST_ONE = ("clip_len", "frame_step", "clip_size", "canvas", "crop", "epochs", "batch_size", "val_videos",
                 "train_per_class", "max_steps", "ckpt_every", "log_every")
_NON_NEGATIVE = ("lr", "momentum", "weight_decay", "clip_grad", "backbone_lr_mult", "workers")


def _check_ranges(config: Any) -> None:
    """ValueError naming the option whose value is out of range (None means 'not set' and is always allowed)."""
    for name in _AT_LEAST_ONE + _NON_NEGATIVE:
        value = getattr(config, name, None)
        low = 1 if name in _AT_LEAST_ONE else 0
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value!r} is out of range: it must be >= {low}")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"--dropout {config.dropout!r} is out of range: it must be in [0, 1)")
    if getattr(config, "crop", 0) > getattr(config, "canvas", 0) > 0:
        raise ValueError(f"--crop {config.crop} is larger than --canvas {config.canvas}: the crop is taken from the canvas")


def _from_dict(cls: type, d: dict) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.metadata.get("required") and f.name not in d)
    if missing:
        raise ValueError(f"{cls.__name__} is missing required keys {missing}")
    return cls(**d)


def config_diff(old: Any, new: Any, ignore: frozenset[str] = RESUMABLE_CHANGES) -> dict[str, tuple[Any, Any]]:
    """Fields (outside `ignore`) whose values differ between two configs of the same class: {name: (old, new)}."""
    a, b = old.to_dict(), new.to_dict()
    return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}

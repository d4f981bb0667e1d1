"""Configurations: one frozen dataclass per command, whose fields are its command-line options.

Every field is one option of its command (same name, dashes for underscores; `option()` holds the help text,
choices, and how the text is parsed), so the command line and the config written beside a run cannot drift
apart: the CLIs are generated from these classes (v3s.shared.cli). Options that several commands share are
defined once, in small groups the configs inherit (`RunOptions`). Fields made with `cli=False` are not options but
are filled in when a run resolves its inputs (the label space of a pretraining run, the classes of a finetuning
run). `from_dict` refuses unknown keys, so a config file or checkpoint from a different code version fails loudly.

This module holds the configs that two stages need (training runs, whose checkpoints evaluation rebuilds); the
evaluation and preprocessing commands define theirs beside their code with the same `option()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .choices import INIT_SCHEMES, INPUT_MODES, LR_SCHEDULES, PRECISIONS, SYNC_BN

# Fields that may differ between a run and its --resume: they change where and how fast it runs, not what
# it computes (workers and device only change speed; the data order and augmentation draws do not depend on them).
RESUMABLE_CHANGES = frozenset({"resume", "workers", "device", "compile", "log_every", "ckpt_every", "out", "monitor_every",
                               "monitor_per_class"})


def option(default: Any = dataclasses.MISSING, help: str = "", *, choices: tuple[str, ...] | None = None,
           parse: str | None = None, flag: str | None = None, path: str | None = None, argument: bool = False,
           min: float | None = None, above: float | None = None, why: str | None = None, cli: bool = True) -> Any:
    """A dataclass field that is a command-line option.

    Args:
        default: the default (leave out for a required option).
        help: the option's help text.
        choices: the valid values of a string option.
        parse: how the option's text becomes the value: a key of `PARSERS` ("ints", "floats", "names", "size").
        flag: the option's spelling when it is not --field-name (e.g. "--C").
        path: "file", "dir" or "any": the option names a path (checked where it is used, not by the parser).
        argument: a positional argument instead of an option.
        min: the smallest valid value (numbers), checked by every config (`ConfigBase`).
        above: a bound the value must exceed (numbers that must be positive: above=0).
        why: what an out-of-range value is told instead of the bare bound (e.g. "cross-validation needs >= 2 folds").
        cli: False for a field that is resolved by the run, not given by the user.
    """
    metadata = {"help": help, "cli": cli, "choices": choices, "parse": parse, "flag": flag, "path": path,
                "argument": argument, "min": min, "above": above, "why": why}
    return dataclasses.field(default=default, metadata=metadata)


def _parse_list(text: str, convert: Callable[[str], Any], what: str, example: str) -> tuple:
    try:
        values = tuple(convert(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"is not a comma-separated list of {what}s, e.g. {example}") from None
    if not values:
        raise ValueError(f"names no {what}")
    return values


def parse_ints(text: str) -> tuple[int, ...]:
    """"1,5,10" -> (1, 5, 10). Errors say what is wrong, not the value (the caller names the option and value)."""
    return _parse_list(text, int, "integer", "1,5,10,20,50")


def parse_floats(text: str) -> tuple[float, ...]:
    """"0.01,0.1,1" -> (0.01, 0.1, 1.0)."""
    return _parse_list(text, float, "number", "0.01,0.1,1,10")


def parse_names(text: str) -> tuple[str, ...]:
    """"pool3, pool4" -> ("pool3", "pool4")."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise ValueError("names nothing")
    return names


def parse_size(text: str) -> tuple[int, int]:
    """"128x171" -> (128, 171) (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError("is not HEIGHTxWIDTH, e.g. 128x171") from None
    if h < 1 or w < 1:
        raise ValueError("has a height or width below 1")
    return h, w


PARSERS: dict[str, Callable[[str], Any]] = {"ints": parse_ints, "floats": parse_floats, "names": parse_names,
                                             "size": parse_size}


def format_default(value: Any, parse: str | None = None) -> Any:
    """A default as the option text that parses back to it ((1, 5) -> "1,5"; size (128, 171) -> "128x171")."""
    if parse == "size" and value is not None:
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


class ConfigBase:
    """What every config does with its fields: check them, and round-trip through a plain dict.

    Fields listed in `_tuples` are tuples in the config and lists in its dict (config.json, checkpoints).
    """

    _tuples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_bounds(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in self._tuples:
            if d.get(name) is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        d = dict(d)
        for name in cls._tuples:
            if d.get(name) is not None:
                d[name] = tuple(d[name])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in d)
        if missing:
            raise ValueError(f"{cls.__name__} is missing required keys {missing}")
        return cls(**d)

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


def flag_of(f: dataclasses.Field) -> str:
    """How the command line spells a field's option."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_bounds(config: Any) -> None:
    """ValueError naming the option whose value is below its field's `min` or not above its `above` (None means
    'not set' and is always allowed)."""
    for f in dataclasses.fields(config):
        value, low, above = getattr(config, f.name), f.metadata.get("min"), f.metadata.get("above")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        why = f.metadata.get("why")
        if low is not None and value < low:
            raise ValueError(f"{flag_of(f)} {value!r} is out of range: {why or f'it must be >= {low}'}")
        if above is not None and not value > above:
            raise ValueError(f"{flag_of(f)} {value!r} is out of range: {why or f'it must be a number > {above}'}")


@dataclass(frozen=True, kw_only=True)
class StoreSplit(ConfigBase):
    """Which videos: a dataset of a frame store made by `v3s-prep extract`, and one of its splits."""

    store: Optional[str] = option(None, "Frame store made by `v3s-prep extract` [default: the workspace's "
                                        "v3s-store, in $V3S_WORKSPACE or the current folder].", path="dir")
    dataset: Optional[str] = option(None, "Dataset name inside the store (ucf101, hmdb51, ...).")
    split: str = option("1", "Split id (paper: split 1).")


@dataclass(frozen=True, kw_only=True)
class RunOptions(ConfigBase):
    """The options of a training run that mean the same in pretraining and finetuning."""

    out: Optional[str] = option(None, "Run folder: last.pt, best.pt, config.json, metrics.jsonl, curves.png "
                                      "[default: runs/<kind>-<dataset>-<backbone>... in the workspace].", path="out-dir")
    clip_len: int = option(16, "Frames per clip (paper: 16).", min=1)
    momentum: float = option(0.9, "SGD momentum (paper: 0.9).", min=0)
    weight_decay: float = option(5e-4, "SGD weight decay (paper silent; VCOP's 5e-4).", min=0)
    lr_schedule: str = option("cosine", "Learning-rate schedule (paper silent): cosine per step, plateau (VCOP), constant.",
                              choices=LR_SCHEDULES)
    clip_grad: float = option(0.0, "Clip the gradient norm to this value; 0 disables (the paper does not clip).", min=0)
    max_steps: Optional[int] = option(None, "Stop after this many optimiser steps (short runs on the same code path).", min=1)
    workers: Optional[int] = option(None, "DataLoader worker processes per rank (default: this rank's share of the "
                                          "CPU cores, less one, at most 8).", min=0)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N.")
    precision: str = option("auto", "auto (bf16 on GPUs that run it natively, fp16 on older GPUs, fp32 on CPU), "
                                    "bf16, fp16, fp32.", choices=PRECISIONS)
    sync_bn: str = option("auto", "Batch-norm statistics over the global batch under DDP (SyncBatchNorm): auto = on for "
                                  "CUDA DDP runs (the paper's statistics are over the whole batch, as on one GPU), off "
                                  "otherwise.", choices=SYNC_BN)
    compile: bool = option(False, "Wrap the model in torch.compile.")
    channels_last: bool = option(False, "Use the channels_last_3d memory format.")
    ckpt_every: int = option(500, "Also write last.pt every this many steps (end of epoch always writes).", min=1)
    log_every: int = option(20, "Steps between progress-bar and TensorBoard updates.", min=1)
    resume: bool = option(False, "Require a run to continue in --out (a rerun continues its run without it).")

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", str(self.split))  # split ids are strings in the store ("1", not 1)
        super().__post_init__()
        if not self.dropout < 1:
            raise ValueError(f"--dropout {self.dropout!r} is out of range: it must be in [0, 1)")
        if getattr(self, "crop", 0) > getattr(self, "canvas", 0) > 0:
            raise ValueError(f"--crop {self.crop} is larger than --canvas {self.canvas}: the crop is taken from the canvas")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(StoreSplit, RunOptions):
    """V3S pretraining: paper section 4.1.2 defaults (SGD lr 0.01, momentum 0.9, batch 32, 300 epochs, 800 val videos).

    Its train list (without --val-videos) is the pretraining set; the paper pretrains on UCF101 split 1.
    """
    backbone: str = option("r21d", "Backbone name (r21d, r3d, r3d18, c3d, s3dg).")
    width: float = option(1.0, "Channel width multiplier of the backbone (1.0 = the paper's networks).", above=0)
    input_mode: str = option("rgb", "Network input: rgb frames (the paper) or diff, differences of consecutive frames "
                                    "(the CPU demo's choice, docs/demo.md).", choices=INPUT_MODES)
    transforms: str = option("all", "Label space: a preset (all, ss, sp, ss+sp, ts, tp, ts+tp, ...) or a comma list "
                                    "of ss,sp,ts,tp.")
    clip_size: int = option(112, "Side of the square crop fed to the network (paper: 112).", min=1)
    canvas: int = option(224, "Frames are resized to a canvas x canvas square before the V3S warp (paper: 224; "
                              "S3D-G: 256).", min=1)
    crop: int = option(112, "Side of the crop taken from the warped canvas, then resized to --clip-size (paper: 112; "
                            "S3D-G: 224). crop / canvas is the share of the frame a pretext clip shows.", min=1)
    pretext_noise: float = option(0.0, "Add fresh Gaussian pixel noise of sigma ~ U(0, this) grey levels to training "
                                       "pretext clips after the warp (paper: none; the CPU demo's choice, "
                                       "docs/demo.md).", min=0)
    epochs: int = option(300, "Epochs over the pretraining videos (paper: 300).", min=1)
    batch_size: Optional[int] = option(None, "Global batch size, split evenly over DDP ranks [default: the paper's "
                                             "32, or the training videos where fewer].", min=1)
    lr: float = option(0.01, "Initial SGD learning rate (paper: 0.01; 0.005 for R3D).", min=0)
    dropout: float = option(0.5, "Dropout before the heads (paper silent; VCOP's 0.5).", min=0)
    val_videos: Optional[int] = option(None, "Validation videos drawn by seed from the train list [default: the "
                                             "paper's 800, or 10% of a list too short for it].", min=1)
    seed: int = option(0, "Seed of the validation draw, data order, augmentation and initialisation.")
    monitor_every: Optional[int] = option(None, "Score the frozen features by kNN on the split's labelled lists every "
                                                "this many steps [default: 10 times per run, at least 50 steps apart, "
                                                "where the split has labels; 0: off]. The labels are never trained "
                                                "on.", min=0)
    monitor_per_class: int = option(20, "Videos per class the representation monitor scores (train list memory, "
                                        "test list queries).", min=1)
    label_space: Optional[dict] = option(None, "Resolved LabelSpace.to_dict() of --transforms.", cli=False)


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(StoreSplit, RunOptions):
    """Supervised finetuning for action recognition: paper section 4.3 (lr 0.001, momentum 0.9, batch 8, crop 112, flip).

    The split's train list (without --val-videos) is trained on.
    """
    init: Optional[str] = option(None, "Pretraining checkpoint (RUN_DIR/best.pt) whose backbone initialises the model "
                                       "[default: the latest pretraining run's best.pt in the workspace].", path="file")
    scratch: bool = option(False, "Random initialisation (the 'Random' rows of paper Table 2) instead of --init.")
    backbone: Optional[str] = option(None, "Backbone name; with --scratch only, default r21d (with --init it comes from the "
                                           "checkpoint).")
    width: Optional[float] = option(None, "Backbone width; with --scratch only (default 1.0).", above=0)
    input_mode: Optional[str] = option(None, "Network input, rgb or diff; with --scratch only (default rgb; with "
                                             "--init it comes from the checkpoint).", choices=INPUT_MODES)
    init_scheme: str = option("he", "With --scratch: how the backbone is initialised: he (He normal convolutions, "
                                    "the project's) or pytorch (torch's module defaults, as the VCOP-family "
                                    "random baselines).", choices=INIT_SCHEMES)
    frame_step: int = option(1, "Take every k-th frame (the clip then spans (clip_len - 1) k + 1 frames; paper: 1, "
                                "consecutive frames). Evaluation of the checkpoint reads clips the same way.", min=1)
    clip_size: int = option(112, "Side of the random crop (paper: 112).", min=1)
    epochs: int = option(160, "Finetuning epochs (paper: stops after 160).", min=1)
    batch_size: Optional[int] = option(None, "Global batch size, split evenly over DDP ranks [default: the paper's "
                                             "8, or the training videos where fewer].", min=1)
    lr: float = option(0.001, "Initial SGD learning rate (paper: 0.001 for C3D, R3D, R(2+1)D).", min=0)
    backbone_lr_mult: float = option(1.0, "Backbone learning rate = lr x this (1.0: the paper's uniform rate).", min=0)
    dropout: float = option(0.5, "Dropout before the classifier (paper silent; VCOP's 0.5).", min=0)
    no_flip: bool = option(False, "No horizontal flips (for labels that depend on left/right, e.g. the synthetic set).")
    val_videos: Optional[int] = option(None, "Held-out train videos for model selection [default: 800 for UCF101 "
                                             "and 400 for HMDB51 (the peers'), else 10%].", min=1)
    train_per_class: Optional[int] = option(None, "Train on this many labelled videos per class, drawn by seed "
                                                  "(default: all).", min=1)
    seed: int = option(0, "Seed of the validation and subset draws, data order, augmentation and head initialisation.")
    n_classes: Optional[int] = option(None, "Resolved number of classes.", cli=False)
    classes: Optional[tuple] = option(None, "Resolved class names, in label order.", cli=False)

    _tuples = ("classes",)


def config_diff(old: Any, new: Any, ignore: frozenset[str] = RESUMABLE_CHANGES) -> dict[str, tuple[Any, Any]]:
    """Fields (outside `ignore`) whose values differ between two configs of the same class: {name: (old, new)}.

    Paths are compared as the places they name ('v3s-store' and '/work/v3s-store' are the same store when the
    current folder is /work)."""
    a, b = old.to_dict(), new.to_dict()
    paths = {f.name for f in dataclasses.fields(new) if f.metadata.get("path")}

    def same(k: str) -> bool:
        if k in paths and isinstance(a[k], str) and isinstance(b[k], str):
            return Path(a[k]).expanduser().resolve() == Path(b[k]).expanduser().resolve()
        return a[k] == b[k]

    return {k: (a[k], b[k]) for k in a if k not in ignore and not same(k)}

"""The backbone registry and loading a pretraining checkpoint's backbone into a new model."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import functools
import math
from pathlib import Path

import torch
from torch import nn

from ..choices import INIT_SCHEMES, INPUT_MODES
from .base import VideoBackbone, check_width, init_weights
from .c3d import c3d
from .resnet3d import r2plus1d, r3d, r3d18
from .s3dg import s3dg

BACKBONES: dict[str, Callable[..., VideoBackbone]] = {
    "c3d": c3d,
    "r3d": r3d,
    "r3d18": r3d18,
    "r21d": r2plus1d,
    "s3dg": s3dg,
}


def build_backbone(name: str, width: float = 1.0, input_mode: str = "rgb", init_scheme: str = "he") -> VideoBackbone:
    """Build a registered backbone and initialise it: the one place a backbone's initial weights are decided.

    Args:
        name: one of BACKBONES ("c3d", "r3d", "r3d18", "r21d", "s3dg").
        width: channel multiplier (>0); 1.0 is the published network.
        input_mode: "rgb" (the paper) or "diff" (differences of consecutive frames; no parameters change).
        init_scheme: "he" (He normal convolutions, the default) or "pytorch" (torch's own module defaults, as
            the VCOP-family random baselines); see `init_weights`. Under one torch seed the weights are fixed.

    Returns:
        a VideoBackbone mapping (B, 3, T, H, W) clips to (B, feature_dim) features.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names are {sorted(BACKBONES)}")
    if input_mode not in INPUT_MODES:
        raise ValueError(f"unknown input_mode {input_mode!r}; valid modes are {list(INPUT_MODES)}")
    if init_scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {init_scheme!r}; valid schemes are {list(INIT_SCHEMES)}")
    _check_fits_in_memory(name, check_width(width))
    # The builders construct the modules only (each draws torch's default initialisation as it is made).
    backbone = BACKBONES[name](width=width)
    init_weights(backbone, init_scheme)
    backbone.input_mode = input_mode
    return backbone


def count_parameters(name: str, width: float = 1.0) -> int:
    """Parameters of a registered backbone, counted on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in BACKBONES[name](width=check_width(width)).parameters())


def _available_memory() -> int | None:
    """Bytes of RAM this machine can still give (MemAvailable), None where /proc/meminfo is absent."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_fits_in_memory(name: str, width: float) -> None:
    """ValueError instead of the kernel's OOM kill when --width builds a network larger than the free memory.

    Widths up to 2 (at most about 4x the paper's networks, 110M parameters for C3D) are not counted: counting on
    the meta device costs a second in a fresh process.
    """
    if width <= 2:
        return
    n = count_parameters(name, width)
    free = _available_memory()
    # Training holds weights, gradients and momentum in fp32; a network whose weights alone fill the memory
    # would be killed while being built.
    if free is not None and 3 * 4 * n > free:
        raise ValueError(f"{name} at width {width:g} has {n / 1e6:,.0f}M parameters: training it needs about "
                         f"{12 * n / 2**30:,.1f} GiB for weights, gradients and momentum alone, and this machine has "
                         f"{free / 2**30:.1f} GiB free; use a smaller --width (1.0 is the paper's network)")


@functools.lru_cache(maxsize=None)
def strides(name: str) -> tuple[int, int]:
    """(temporal, spatial) stride of a backbone's last stage, measured on a one-channel copy of it (the same strides
    and pools; width does not change them) fed the paper's 16x112x112 clip of zeros."""
    net = BACKBONES[name](width=1e-3).eval()
    x = torch.zeros(1, 3, 16, 112, 112)
    with torch.no_grad():
        for stage in net.stages.values():
            x = stage(x)
    # Strides are powers of two; sizes that do not divide evenly (S3D-G: 112 -> 3) round to the nearest one.
    return tuple(2 ** round(math.log2(size / out)) for size, out in ((16, x.shape[2]), (112, x.shape[3])))


def check_clip_shape(name: str, clip_len: int, clip_size: int) -> None:
    """ValueError when clips are smaller than the backbone's strides: its last stage would see less than one
    frame or pixel of the clip (the rest is padding)."""
    t, s = strides(name)
    if clip_len < t or clip_size < s:
        raise ValueError(f"clips of {clip_len} frames at {clip_size}x{clip_size} are too small for {name}, whose last "
                         f"stage has a stride of {t} frames and {s} pixels: use --clip-len >= {t} and --clip-size >= "
                         f"{s} (the paper: 16 frames at 112x112)")


def _normalise_key(key: str) -> str:
    # A DistributedDataParallel wrapper adds "module.", torch.compile adds "_orig_mod." wherever it wrapped.
    if key.startswith("module."):
        key = key[len("module."):]
    return key.replace("_orig_mod.", "")


def load_backbone_weights(backbone: nn.Module, state_dict: Mapping[str, torch.Tensor],
                          prefix: str = "backbone.") -> tuple[list[str], list[str]]:
    """Copy the backbone part of a full-model state_dict into ``backbone``; everything else is ignored.

    Args:
        backbone: the module to load into (e.g. a finetuning model's ``.backbone``).
        state_dict: a full model's state_dict (keys "backbone.*", "head.*"); "module." and "_orig_mod."
            wrappers are stripped first. Use prefix="" for a bare backbone state_dict.
        prefix: key prefix of the backbone entries.

    Returns:
        (missing, unexpected): backbone parameter/buffer names absent from the checkpoint, and
        checkpoint backbone names the backbone does not have, both sorted, without the prefix.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    keys = {_normalise_key(k): v for k, v in state_dict.items()}
    picked = {k[len(prefix):]: v for k, v in keys.items() if k.startswith(prefix)}
    if not picked:
        examples = sorted(keys)[:5]
        raise ValueError(f"no key of the state_dict starts with {prefix!r} (first keys: {examples}); "
                         f"pass prefix='' for a bare backbone state_dict")
    own = backbone.state_dict()
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in sorted(picked.items()) if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        raise ValueError(f"shape mismatch for {len(mismatched)} backbone tensors (wrong backbone or width?): "
                         + "; ".join(mismatched[:10]))
    result = backbone.load_state_dict(picked, strict=False)
    return sorted(result.missing_keys), sorted(result.unexpected_keys)

"""The backbone registry and loading a pretraining checkpoint's backbone into a new model."""
from __future__ import annotations

from collections.abc import Callable, Mapping

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
    # The builders construct the modules only (each draws torch's default initialisation as it is made).
    backbone = BACKBONES[name](width=check_width(width))
    init_weights(backbone, init_scheme)
    backbone.input_mode = input_mode
    return backbone


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

"""What every backbone family shares: the five-stage layout, named feature taps and channel scaling."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn

from ..choices import INIT_SCHEMES


STAGE_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
TAP_NAMES = ("pool3", "pool4", "pool5", "conv5", "pool")
# A "poolK" tap is stage convK's output averaged over (T, H, W): one fixed-size vector per clip
# whatever the input size, which is what ASLAN's per-layer similarity measures need.
_POOLED_TAPS = {"conv3": "pool3", "conv4": "pool4", "conv5": "pool5"}


def check_width(width: float) -> float:
    """Validate a width multiplier and return it as a float.

    Args:
        width: channel multiplier; must be a finite number > 0.
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    return float(width)


def scale_channels(channels: int, width: float) -> int:
    """Channel count of a layer at a width multiplier: round(channels * width), at least 1.

    Args:
        channels: the layer's channel count at width 1.0.
        width: channel multiplier (> 0).
    """
    return max(1, int(round(channels * width)))


class VideoBackbone(nn.Module):
    """Five named stages (conv1..conv5) followed by global average pooling.

    Stage ``convK`` holds everything after stage K-1's last convolution up to stage K's last
    convolution (so a family's downsampling pool sits at the start of the next stage). Subclasses
    only build the stages; pooling and taps are defined here once, for all families alike.

    Args:
        stages: modules named ``conv1`` .. ``conv5``, applied in that order.
        feature_dim: channels of the conv5 output (= size of the pooled vector).
        tap_dims: channels of each pooled tap ``pool3``, ``pool4``, ``pool5``.
    """

    tap_names: tuple[str, ...] = TAP_NAMES
    input_mode: str = "rgb"  # set by build_backbone; one of INPUT_MODES

    def __init__(self, stages: dict[str, nn.Module], feature_dim: int, tap_dims: dict[str, int]) -> None:
        super().__init__()
        assert tuple(stages) == STAGE_NAMES, tuple(stages)
        self.stages = nn.ModuleDict(stages)
        self.feature_dim = feature_dim
        self.tap_dims = dict(tap_dims)
        # VCOP/PRP/PacePred's retrieval feature: conv5 max-pooled 2x2 in space, flattened (9,216-d at 16x112x112).
        self.conv5_pool = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip batch of shape (B, 3, T, H, W), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled clip features.

        Args:
            x: float clips (B, 3, T, H, W).

        Returns:
            (B, feature_dim) conv5 output averaged over time and space.
        """
        return self.forward_features(x, ("pool",))["pool"]

    def forward_features(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        """Named intermediate features in one pass.

        Args:
            x: float clips (B, 3, T, H, W).
            taps: names from ``tap_names``: ``pool3``/``pool4``/``pool5`` (stage conv3/conv4/conv5 output
                averaged to (B, C)), ``conv5`` (conv5 output after MaxPool3d((1,2,2)), flattened to
                (B, C*T'*H'*W')), ``pool`` (the forward() vector, (B, feature_dim)).

        Returns:
            dict tap name -> tensor, one entry per requested tap.
        """
        if isinstance(taps, str):
            raise ValueError(f"taps must be a sequence of tap names, not the string {taps!r}")
        unknown = [t for t in taps if t not in self.tap_names]
        if unknown:
            raise ValueError(f"unknown taps {unknown}; valid taps are {list(self.tap_names)}")
        self._check_input(x)
        if self.input_mode == "diff":
            if x.shape[2] < 2:
                raise ValueError(f"input_mode 'diff' needs clips of >= 2 frames, got {tuple(x.shape)}")
            x = x[:, :, 1:] - x[:, :, :-1]
        out: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            pooled = _POOLED_TAPS.get(name)
            if pooled is not None and pooled in taps:
                out[pooled] = x.mean(dim=(2, 3, 4))
        if "pool" in taps:
            out["pool"] = out["pool5"] if "pool5" in out else x.mean(dim=(2, 3, 4))
        if "conv5" in taps:
            if x.shape[-2] < 2 or x.shape[-1] < 2:
                raise ValueError(f"the conv5 tap max-pools 2x2 in space but conv5 is {tuple(x.shape[2:])} (T, H, W) "
                                 f"for this input; use a larger clip (e.g. >= 64x64 for s3dg, >= 32x32 otherwise)")
            out["conv5"] = torch.flatten(self.conv5_pool(x), 1)
        return {t: out[t] for t in taps}


def init_weights(module: nn.Module, scheme: str = "he") -> None:
    """Initialise a freshly built backbone in place.

    "he": He normal for convolutions (fan_out, as torchvision's video ResNets), zero conv biases, unit batch norm;
    linears keep torch's defaults. "pytorch": nothing is redrawn, so every module keeps what its own constructor
    drew (convolutions and linears kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm 1 and 0): the initialisation of the VCOP-family code, whose
    random baselines never call an init function.

    Args:
        module: the model to initialise in place (built under the seed that should fix its weights).
        scheme: one of INIT_SCHEMES.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid schemes are {list(INIT_SCHEMES)}")
    if scheme == "pytorch":
        return
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

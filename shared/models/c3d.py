"""C3D with batch norm, as used by VCOP, PRP and PacePred (Tran et al., ICCV 2015; Xu et al., CVPR 2019)."""
from __future__ import annotations

from torch import nn

from .base import VideoBackbone, check_width, scale_channels


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    # C3D keeps the conv bias even before batch norm; VCOP's variant does too, and the
    # public parameter count (27.66M) includes it.
    return [nn.Conv3d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]


class C3D(VideoBackbone):
    """C3D: eight 3x3x3 convolutions in five stages, batch norm after each, no fc6/fc7.

    Stages: conv1 (64), conv2 (128), conv3a/b (256), conv4a/b (512), conv5a/b (512) at width 1.
    pool1 is MaxPool3d((1,2,2)) and pool2..pool4 are MaxPool3d(2); pool5 is the global average of
    VideoBackbone.forward, so any input size works (16x112x112 gives conv5 at 512x2x7x7).

    Args:
        width: channel multiplier applied to every layer (>0).
    """

    def __init__(self, width: float = 1.0) -> None:
        width = check_width(width)
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 128, 256, 512, 512))
        stages = {
            "conv1": nn.Sequential(*_conv_bn_relu(3, c1)),
            "conv2": nn.Sequential(nn.MaxPool3d((1, 2, 2)), *_conv_bn_relu(c1, c2)),
            "conv3": nn.Sequential(nn.MaxPool3d(2), *_conv_bn_relu(c2, c3), *_conv_bn_relu(c3, c3)),
            "conv4": nn.Sequential(nn.MaxPool3d(2), *_conv_bn_relu(c3, c4), *_conv_bn_relu(c4, c4)),
            "conv5": nn.Sequential(nn.MaxPool3d(2), *_conv_bn_relu(c4, c5), *_conv_bn_relu(c5, c5)),
        }
        super().__init__(stages, feature_dim=c5, tap_dims={"pool3": c3, "pool4": c4, "pool5": c5})


def c3d(width: float = 1.0) -> C3D:
    """C3D with batch norm (VCOP's definition; 27.66M parameters at width 1).

    Args:
        width: channel multiplier (>0).
    """
    return C3D(width)

"""S3D-G: separable 3D Inception with feature gating (Xie et al., "Rethinking Spatiotemporal Feature
Learning", ECCV 2018).

Layout as torchvision's S3D (and CoCLR's S3D): every k x k x k convolution after the 1x1x1s is a
1 x k x k spatial conv followed by a k x 1 x 1 temporal conv, each with BN and ReLU. Feature gating
(the "-G") multiplies a feature map by sigmoid(W * mean_{t,h,w}(x) + b) per channel; as in the
paper's TensorFlow model it follows Conv_2c and each of the four branches of every Inception block.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import VideoBackbone, check_width, scale_channels

# Inception block widths at width 1: (b0 1x1, b1 1x1, b1 sep3x3, b2 1x1, b2 sep3x3, b3 pool-1x1).
_MIXED = {
    "3b": (64, 96, 128, 16, 32, 32),
    "3c": (128, 128, 192, 32, 96, 64),
    "4b": (192, 96, 208, 16, 48, 64),
    "4c": (160, 112, 224, 24, 64, 64),
    "4d": (128, 128, 256, 24, 64, 64),
    "4e": (112, 144, 288, 32, 64, 64),
    "4f": (256, 160, 320, 32, 128, 128),
    "5b": (256, 160, 320, 32, 128, 128),
    "5c": (384, 192, 384, 48, 128, 128),
}


def _unit(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
          padding: tuple[int, int, int] = (0, 0, 0)) -> list[nn.Module]:
    return [nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False), nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True)]


class SepConv3d(nn.Sequential):
    """Separable k x k x k conv: (1,k,k) conv-BN-ReLU to c_out, then (k,1,1) conv-BN-ReLU.

    Args:
        c_in: input channels.
        c_out: output channels (also the width between the two convolutions).
        k: kernel size.
        stride: stride in time and space.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        p = k // 2
        super().__init__(*_unit(c_in, c_out, (1, k, k), (1, stride, stride), (0, p, p)),
                         *_unit(c_out, c_out, (k, 1, 1), (stride, 1, 1), (p, 0, 0)))


class SelfGating(nn.Module):
    """S3D-G feature gating: x * sigmoid(fc(mean over T, H, W of x)), per channel.

    Args:
        channels: channels of the gated feature map.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, C, T, H, W). Returns a tensor of the same shape."""
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class GatedInception(nn.Module):
    """Inception block with separable 3x3x3 branches, each branch output gated.

    Args:
        c_in: input channels.
        widths: (b0, b1_reduce, b1, b2_reduce, b2, b3) output channels.
    """

    def __init__(self, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        b0, b1r, b1, b2r, b2, b3 = widths
        self.branch0 = nn.Sequential(*_unit(c_in, b0, (1, 1, 1)))
        self.branch1 = nn.Sequential(*_unit(c_in, b1r, (1, 1, 1)), SepConv3d(b1r, b1, 3))
        self.branch2 = nn.Sequential(*_unit(c_in, b2r, (1, 1, 1)), SepConv3d(b2r, b2, 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), *_unit(c_in, b3, (1, 1, 1)))
        self.gates = nn.ModuleList(SelfGating(c) for c in (b0, b1, b2, b3))
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, c_in, T, H, W). Returns (B, out_channels, T, H, W)."""
        branches = (self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x))
        return torch.cat([gate(b) for gate, b in zip(self.gates, branches)], dim=1)


class S3DG(VideoBackbone):
    """S3D-G backbone without the classifier: 1024 features at width 1 (9.14M parameters; 9,135,056).

    Stages: conv1 = Conv_1a (separable 7x7x7, stride 2 in t, h, w); conv2 = MaxPool_2a (1,3,3)/(1,2,2),
    Conv_2b 1x1x1, Conv_2c separable 3x3x3, gate; conv3 = MaxPool_3a, Mixed_3b, 3c; conv4 = MaxPool_4a
    (3,3,3)/2, Mixed_4b..4f; conv5 = MaxPool_5a (2,2,2)/2, Mixed_5b, 5c. A 16x112x112 clip gives conv5 at
    1024x2x3x3.

    Args:
        width: channel multiplier applied to every layer (>0).
    """

    def __init__(self, width: float = 1.0) -> None:
        width = check_width(width)
        c1, c2b, c2c = (scale_channels(c, width) for c in (64, 64, 192))

        def mixed(c_in: int, name: str) -> GatedInception:
            return GatedInception(c_in, tuple(scale_channels(c, width) for c in _MIXED[name]))

        m3b = mixed(c2c, "3b")
        m3c = mixed(m3b.out_channels, "3c")
        m4 = [mixed(m3c.out_channels, "4b")]
        for name in ("4c", "4d", "4e", "4f"):
            m4.append(mixed(m4[-1].out_channels, name))
        m5b = mixed(m4[-1].out_channels, "5b")
        m5c = mixed(m5b.out_channels, "5c")
        stages = {
            "conv1": SepConv3d(3, c1, 7, stride=2),
            "conv2": nn.Sequential(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                                   *_unit(c1, c2b, (1, 1, 1)), SepConv3d(c2b, c2c, 3), SelfGating(c2c)),
            "conv3": nn.Sequential(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), m3b, m3c),
            "conv4": nn.Sequential(nn.MaxPool3d(3, stride=2, padding=1), *m4),
            "conv5": nn.Sequential(nn.MaxPool3d(2, stride=2), m5b, m5c),
        }
        tap_dims = {"pool3": m3c.out_channels, "pool4": m4[-1].out_channels, "pool5": m5c.out_channels}
        super().__init__(stages, feature_dim=m5c.out_channels, tap_dims=tap_dims)


def s3dg(width: float = 1.0) -> S3DG:
    """S3D-G with feature gating (Xie et al. 2018): 9.14M parameters at width 1 without the classifier.

    Args:
        width: channel multiplier (>0).
    """
    return S3DG(width)

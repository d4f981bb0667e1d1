"""Video ResNets: R3D and R(2+1)D share one network and differ only in the convolution maker.

Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018, as
defined by VCOP (Xu et al., CVPR 2019) and reused by PRP, VCP and PacePred: a 3x7x7 stem with
stride (1,2,2), four residual stages (64, 128, 256, 512 channels) whose first block in stages 3-5
strides 2 in time and space, and a projection shortcut (1x1x1 conv + BN) built with the same conv
maker as the block. With layers (2,2,2,2) and full 3D convolutions this is torchvision's r3d_18.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from .base import VideoBackbone, check_width, scale_channels

Triple = tuple[int, int, int]
ConvMaker = Callable[[int, int, Triple, Triple, Triple], nn.Module]


class Conv3DSimple(nn.Conv3d):
    """A full k_t x k_h x k_w convolution without bias (batch norm follows).

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel, stride, padding: (t, h, w) triples.
    """

    def __init__(self, c_in: int, c_out: int, kernel: Triple, stride: Triple, padding: Triple) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)


class Conv2Plus1D(nn.Sequential):
    """A (2+1)D convolution: 1 x k_h x k_w spatial conv, BN, ReLU, then k_t x 1 x 1 temporal conv.

    The middle width M = floor(k_t*k_h*k_w*c_in*c_out / (k_h*k_w*c_in + k_t*c_out)) keeps the
    parameter count of the full 3D convolution it replaces (Tran et al. 2018, Sec. 3.5); VCOP
    applies the same rule to the stem (M=83) and to the 1x1x1 shortcut (M=c_in*c_out/(c_in+c_out)).

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel, stride, padding: (t, h, w) triples of the 3D convolution being factorised.
    """

    def __init__(self, c_in: int, c_out: int, kernel: Triple, stride: Triple, padding: Triple) -> None:
        kt, kh, kw = kernel
        mid = max(1, (kt * kh * kw * c_in * c_out) // (kh * kw * c_in + kt * c_out))
        super().__init__(
            nn.Conv3d(c_in, mid, (1, kh, kw), stride=(1, stride[1], stride[2]), padding=(0, padding[1], padding[2]),
                      bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, c_out, (kt, 1, 1), stride=(stride[0], 1, 1), padding=(padding[0], 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """Residual block: conv-BN-ReLU-conv-BN plus shortcut, then ReLU.

    Args:
        c_in: input channels.
        c_out: output channels.
        conv_maker: builds each convolution (Conv3DSimple or Conv2Plus1D).
        stride: stride of the first convolution and of the shortcut, in t, h and w alike.
    """

    def __init__(self, c_in: int, c_out: int, conv_maker: ConvMaker, stride: int = 1) -> None:
        super().__init__()
        s = (stride, stride, stride)
        self.conv1 = conv_maker(c_in, c_out, (3, 3, 3), s, (1, 1, 1))
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = conv_maker(c_out, c_out, (3, 3, 3), (1, 1, 1), (1, 1, 1))
        self.bn2 = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(conv_maker(c_in, c_out, (1, 1, 1), s, (0, 0, 0)), nn.BatchNorm3d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, c_in, T, H, W). Returns (B, c_out, T/stride, H/stride, W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def vcop_stem(conv_maker: ConvMaker) -> Callable[[int], nn.Module]:
    """The VCOP/torchvision R3D stem (3x7x7 conv, stride (1,2,2), BN, ReLU) built with ``conv_maker``.

    Args:
        conv_maker: Conv3DSimple for R3D, Conv2Plus1D for R(2+1)D.

    Returns:
        a function c_out -> stem module taking (B, 3, T, H, W) to (B, c_out, T, H/2, W/2).
    """

    def make(c_out: int) -> nn.Module:
        return nn.Sequential(conv_maker(3, c_out, (3, 7, 7), (1, 2, 2), (1, 3, 3)), nn.BatchNorm3d(c_out),
                             nn.ReLU(inplace=True))

    return make


class VideoResNet(VideoBackbone):
    """Generic video ResNet: stem (stage conv1) and four residual stages (conv2..conv5).

    Args:
        block: residual block class, called as block(c_in, c_out, conv_maker, stride).
        conv_makers: one conv maker per residual stage (4 entries).
        layers: blocks per residual stage (4 entries), e.g. (1,1,1,1) for VCOP, (2,2,2,2) for R3D-18.
        stem: function c_out -> stem module.
        width: channel multiplier (>0) applied to every stage.
    """

    def __init__(self, block: type[BasicBlock], conv_makers: Sequence[ConvMaker], layers: Sequence[int],
                 stem: Callable[[int], nn.Module], width: float = 1.0) -> None:
        width = check_width(width)
        if len(conv_makers) != 4 or len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"need 4 conv makers and 4 block counts >= 1, got {len(conv_makers)} and {tuple(layers)}")
        channels = [scale_channels(c, width) for c in (64, 128, 256, 512)]
        stages: dict[str, nn.Module] = {"conv1": stem(channels[0])}
        c_in = channels[0]
        for i, (c_out, maker, n_blocks) in enumerate(zip(channels, conv_makers, layers)):
            stride = 1 if i == 0 else 2
            blocks = [block(c_in, c_out, maker, stride)] + [block(c_out, c_out, maker) for _ in range(n_blocks - 1)]
            stages[f"conv{i + 2}"] = nn.Sequential(*blocks)
            c_in = c_out
        super().__init__(stages, feature_dim=channels[3],
                         tap_dims={"pool3": channels[1], "pool4": channels[2], "pool5": channels[3]})


def r3d(width: float = 1.0) -> VideoResNet:
    """R3D as in VCOP, layers (1,1,1,1): 14.36M parameters at width 1 (Tran et al. 2018; Xu et al. 2019).

    Args:
        width: channel multiplier (>0).
    """
    return VideoResNet(BasicBlock, [Conv3DSimple] * 4, (1, 1, 1, 1), vcop_stem(Conv3DSimple), width)


def r3d18(width: float = 1.0) -> VideoResNet:
    """R3D-18, layers (2,2,2,2) (= torchvision r3d_18 without fc): 33.17M parameters at width 1.

    Args:
        width: channel multiplier (>0).
    """
    return VideoResNet(BasicBlock, [Conv3DSimple] * 4, (2, 2, 2, 2), vcop_stem(Conv3DSimple), width)


def r2plus1d(width: float = 1.0) -> VideoResNet:
    """R(2+1)D as in VCOP, layers (1,1,1,1): 14.37M parameters at width 1 (the V3S paper's 14.4M).

    Args:
        width: channel multiplier (>0).
    """
    return VideoResNet(BasicBlock, [Conv2Plus1D] * 4, (1, 1, 1, 1), vcop_stem(Conv2Plus1D), width)

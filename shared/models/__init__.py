"""Backbones (C3D, R3D, R3D-18, R(2+1)D, S3D-G) with feature taps and width scaling, and the heads."""
from .base import TAP_NAMES, VideoBackbone
from .c3d import C3D, c3d
from .heads import ClassifierHead, V3SHead, VideoModel
from .registry import BACKBONES, build_backbone, check_clip_shape, load_backbone_weights
from .resnet3d import BasicBlock, Conv2Plus1D, Conv3DSimple, VideoResNet, r2plus1d, r3d, r3d18
from .s3dg import S3DG, s3dg

__all__ = [
    "BACKBONES", "build_backbone", "check_clip_shape", "load_backbone_weights", "V3SHead", "ClassifierHead", "VideoModel",
    "VideoBackbone", "TAP_NAMES", "C3D", "VideoResNet", "BasicBlock", "Conv3DSimple", "Conv2Plus1D", "S3DG",
    "c3d", "r3d", "r3d18", "r2plus1d", "s3dg",
]

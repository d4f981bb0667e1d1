"""The embedded synthetic dataset: real encoded videos whose classes differ only by the pattern of motion.

Every clip shows one large textured object of canonical proportions (disc, square, regular polygon, star,
upright house or figure) moving over a random textured background with camera jitter, pixel noise and small
distractor objects. Appearance is drawn at random independently of the class; the class decides only the motion.
Two class sets: "directions" (the default), whose classes differ by the shape of the trajectory (direction, path,
growth) and share one narrow speed range, so that a clip's apparent speed comes from V3S's sampling step alone;
and "kinds", whose classes differ by the kind of motion (path, speed profile, growth) with the direction drawn per
clip and each kind at its own natural speed, as real actions (docs/synth.md says why both exist).

The random draw is split from rendering: `sample_scene(spec)` draws every parameter from the clip's seeds,
`trajectory(scene)` is the ground truth (object centre and size per frame), `render_frames(scene)` paints pixels.
`generate(config, out)` plans the dataset in a UCF101, HMDB51 or ASLAN layout and encodes every clip with ffmpeg.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import *  # noqa: F401,F403 (the options and constants load without numpy, cv2 or ffmpeg)
from .config import SynthConfig, class_pool  # noqa: F401

# Everything else loads on first use, so that a command line's --help does not import cv2 and ffmpeg.
_MODULES = ("scene", "render", "layout", "build")


def __getattr__(name: str) -> Any:
    for module in _MODULES:
        m = importlib.import_module(f"{__name__}.{module}")
        if hasattr(m, name):
            return getattr(m, name)
    if name == "read_video_rgb":
        from v3s.shared.video import read_video_rgb
        return read_video_rgb
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

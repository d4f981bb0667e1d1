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

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from v3s.shared.video import ffmpeg_exe, read_video_rgb

LAYOUTS = ("ucf101", "hmdb51", "aslan")
CODECS = {"xvid": ("libxvid", ".avi"), "h264": ("libx264", ".mp4")}
FPS = 25

# Motion classes of the default set (ucf101 / hmdb51 layouts); `--classes N` takes the first N.
DEFAULT_CLASSES = (
    "TranslateLeft", "TranslateRight", "TranslateUp", "TranslateDown",
    "CircleClockwise", "CircleCounterclockwise", "OscillateHorizontal", "ZigZagRight",
    "Approach", "Recede", "OscillateVertical", "TranslateDownRight",
)
# The "kinds" set: classes differ in the KIND of motion (path, speed profile, growth), never in its direction:
# each clip draws its direction (and turning sense) at random, as a real action's class does not depend on whether
# it is filmed from the left or the right, so horizontal flips keep every label. Accelerate / Decelerate /
# StopAndGo move along a straight line with a periodic speed profile whose mean is the kind's speed (KIND_SPEED).
KIND_CLASSES = (
    "Glide", "Circle", "Oscillate", "ZigZag", "Loop", "Approach", "Recede", "Accelerate", "Decelerate", "StopAndGo",
)
CLASS_SETS = {"directions": DEFAULT_CLASSES, "kinds": KIND_CLASSES}
# Each kind has its own natural (mean) speed, in multiples of SPEED, as real actions do (running is faster than
# walking): a clip's apparent speed is then the class's speed times the playback speed, so V3S's speed pretext can
# only be solved by recognising the kind of motion (docs/synth.md, "Speed policy").
# (Approach and Recede, shared with the directions set, keep the common speed there and here.)
KIND_SPEED = {"Glide": 1.5, "Circle": 0.7, "Oscillate": 1.2, "ZigZag": 0.9, "Loop": 0.6, "Approach": 1.0,
              "Recede": 1.0, "Accelerate": 1.3, "Decelerate": 0.8, "StopAndGo": 1.1}
# Motion classes of the ASLAN-style set: none of them occurs in DEFAULT_CLASSES (never-seen actions).
ASLAN_CLASSES = (
    "TranslateUpRight", "TranslateUpLeft", "TranslateDownLeft", "OscillateDiagonal", "OscillateAntiDiagonal",
    "ZigZagLeft", "ZigZagUp", "ZigZagDown", "SquarePathClockwise", "SquarePathCounterclockwise",
    "TrianglePathClockwise", "TrianglePathCounterclockwise", "FigureEight", "FigureEightVertical",
    "WaveRight", "WaveLeft", "WaveUp", "WaveDown", "LoopRight", "LoopLeft", "Pulse",
)

# Speed policy (see docs/synth.md): one narrow range for every class, in frame heights per frame.
SPEED = 0.022
PACE_PERIOD = (24, 40)  # frames per cycle of a speed profile (Accelerate, Decelerate, StopAndGo)
GROWTH = 0.008          # |d log(size) / dt| of Approach / Recede / Pulse, per frame
SPREAD = (0.9, 1.1)     # multiplicative range of both rates
OBJECT_SIZE = (0.15, 0.30)   # object bounding diameter, in frame heights
LENGTH = (60, 200)      # frames per video, inclusive
SHAPES = ("disc", "square", "triangle", "pentagon", "hexagon", "star", "house", "figure")
TEXTURES = ("stripes", "checker", "dots", "rings")


@dataclass(frozen=True)
class SynthConfig:
    """What `v3s-prep synth` generates.

    Args:
        layout: "ucf101", "hmdb51" or "aslan".
        classes: number of motion classes (taken in order from the class set, or ASLAN_CLASSES for aslan).
        videos_per_class: clips per class.
        size: (height, width) of the encoded frames; both even (XviD and H.264 in yuv420p need it).
        seed: the dataset seed; the same seed gives the same decoded frames.
        codec: "xvid" (.avi, like UCF101) or "h264" (.mp4).
        pairs_per_fold: ASLAN only: pairs per fold, half same, half not-same.
        class_set: ucf101 / hmdb51 layouts: "directions" (DEFAULT_CLASSES: classes that differ by direction,
            e.g. TranslateLeft vs TranslateRight) or "kinds" (KIND_CLASSES: the kind of motion, direction random).
    """

    layout: str = "ucf101"
    classes: int = 10
    videos_per_class: int = 40
    size: tuple[int, int] = (128, 172)
    seed: int = 0
    codec: str = "xvid"
    pairs_per_fold: int = 40
    class_set: str = "directions"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is not one of {LAYOUTS}")
        if self.class_set not in CLASS_SETS:
            raise ValueError(f"class_set {self.class_set!r} is not one of {tuple(CLASS_SETS)}")
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {tuple(CODECS)}")
        pool = class_pool(self.layout, self.class_set)
        lo = 20 if self.layout == "aslan" else 2
        if not lo <= self.classes <= len(pool):
            raise ValueError(f"classes={self.classes} must be in [{lo}, {len(pool)}] for layout {self.layout!r}"
                             + (" (10 folds of disjoint classes need 2 classes per fold for not-same pairs)"
                                if self.layout == "aslan" else ""))
        if self.videos_per_class < 3:
            raise ValueError(f"videos_per_class={self.videos_per_class} must be >= 3 (3 splits need 3 groups)")
        h, w = self.size
        if h < 32 or w < 32 or h % 2 or w % 2:
            raise ValueError(f"size {h}x{w} must be at least 32x32 with an even height and width "
                             "(XviD and H.264 in yuv420p reject odd sizes)")
        if self.pairs_per_fold < 2 or self.pairs_per_fold % 2:
            raise ValueError(f"pairs_per_fold={self.pairs_per_fold} must be an even number >= 2")


def class_pool(layout: str, class_set: str = "directions") -> tuple[str, ...]:
    """The motion classes a layout draws from (ASLAN's are disjoint from the directions set's)."""
    return ASLAN_CLASSES if layout == "aslan" else CLASS_SETS[class_set]


# ----------------------------------------------------------------------------------------------- scene draw
@dataclass(frozen=True)
class VideoSpec:
    """One clip to make: its motion class, frame size and the seeds of its random draw.

    Args:
        motion: the motion class (a name in DEFAULT_CLASSES, KIND_CLASSES or ASLAN_CLASSES).
        size: (height, width) in pixels.
        group_seed: entropy shared by a group's clips: background, object shape, colours, texture, size.
        clip_seed: entropy of this clip alone: length, speed, start, jitter, distractors, noise.
    """

    motion: str
    size: tuple[int, int]
    group_seed: tuple[int, ...]
    clip_seed: tuple[int, ...]


@dataclass(frozen=True)
class Sprite:
    """Appearance of one object (drawn once, rendered at any size)."""

    shape: str
    angle: float
    texture: str
    colors: tuple[tuple[float, float, float], ...]   # fill, second fill, outline (RGB 0..255)
    texture_scale: float
    texture_angle: float


@dataclass(frozen=True)
class MotionPath:
    """A constant-speed path: one period as a polyline, repeated with an offset (0 for closed loops).

    Args:
        points: (N, 2) float64 polyline of one period, starting at (0, 0), in pixels (x, y).
        offset: (2,) displacement after one period; non-zero paths drift and wrap around the frame.
    """

    points: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Every random parameter of one clip, drawn by `sample_scene`; rendering adds nothing random but noise."""

    spec: VideoSpec
    n_frames: int
    speed: float             # pixels per frame along the path (the mean over a cycle for a speed profile)
    growth: float            # d log(size) / dt for sizing classes, per frame
    size_mode: str           # "const" | "grow" | "shrink" | "pulse"
    base_size: float         # pixels; the object's bounding diameter for "const"
    size_range: tuple[float, float]
    size_phase: float        # frames into the size cycle at t=0
    path: MotionPath
    anchor: np.ndarray       # (2,) where the path's origin sits in the frame
    start: float             # arc length along the path at t=0
    jitter: np.ndarray       # (2 axes, 2 components, 3: amplitude, frequency, phase)
    sprite: Sprite
    background_seed: tuple[int, ...]
    distractors: tuple[tuple[Sprite, float, np.ndarray, np.ndarray], ...]   # sprite, size, start xy, velocity
    noise_sigma: float
    noise_seed: tuple[int, ...]
    pace: str = "const"      # "const" | "accelerate" | "decelerate" | "stopgo": the speed profile along the path
    pace_period: float = 0.0  # frames per cycle of the profile
    pace_phase: float = 0.0   # frames into the cycle at t=0


@dataclass(frozen=True)
class Track:
    """Ground truth of the main object, per frame.

    Args:
        center: (T, 2) float64 object centre (x, y) in frame pixels, camera jitter included.
        size: (T,) float64 bounding diameter in pixels.
        track_id: (T,) int64; changes where the object wraps around the frame or its size cycle restarts,
            so displacements between frames of one id are real motion.
    """

    center: np.ndarray
    size: np.ndarray
    track_id: np.ndarray


def _random_color(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]
                  ) -> tuple[float, float, float]:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(float(c) for c in rgb)


def _random_sprite(rng: np.random.Generator, bold: bool) -> Sprite:
    shape = SHAPES[rng.integers(len(SHAPES))]
    # Regular shapes may sit at any angle and keep their proportions; house and figure stay upright.
    angle = 0.0 if shape in ("house", "figure") else float(rng.uniform(0, 360))
    fill = _random_color(rng, (0.55, 1.0), (0.6, 1.0) if bold else (0.35, 0.8))
    second = tuple(float(0.45 * c) for c in fill) if rng.random() < 0.5 else _random_color(rng, (0.3, 1.0),
                                                                                         (0.2, 0.6))
    outline = (20.0, 20.0, 20.0) if rng.random() < 0.7 else (235.0, 235.0, 235.0)
    return Sprite(shape, angle, TEXTURES[rng.integers(len(TEXTURES))], (fill, second, outline),
                  float(rng.uniform(0.18, 0.35)), float(rng.uniform(0, 180)))


def _unit(deg: float) -> np.ndarray:
    rad = math.radians(deg)
    return np.array([math.cos(rad), math.sin(rad)])


def _closed(points: list | np.ndarray) -> MotionPath:
    pts = np.asarray(points, np.float64)
    return MotionPath(pts - pts[0], np.zeros(2))


def _drifting(points: np.ndarray, offset: np.ndarray) -> MotionPath:
    pts = np.asarray(points, np.float64)
    return MotionPath(pts - pts[0], np.asarray(offset, np.float64))


def _rotate(points: np.ndarray, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return points @ np.array([[c, s], [-s, c]])


# Screen directions in degrees with y pointing down: 0 right, 90 down, 180 left, 270 up.
_DIRECTIONS = {"Left": 180.0, "Right": 0.0, "Up": 270.0, "Down": 90.0, "DownRight": 45.0, "UpRight": 315.0,
               "UpLeft": 225.0, "DownLeft": 135.0}


# The kinds that follow a speed profile along their straight line (`pace_distance`).
_PACES = {"Accelerate": "accelerate", "Decelerate": "decelerate", "StopAndGo": "stopgo"}


def _kind_path(motion: str, rng: np.random.Generator, h: int, w: int) -> tuple[MotionPath, str]:
    """A "kinds" class: the directed path of the same kind with a random direction, angle or turning sense."""
    deg = float(rng.uniform(0, 360))
    if motion == "Glide" or motion in _PACES:
        d = _unit(deg)
        return _drifting(np.stack([np.zeros(2), d * w]), d * w), "const"
    if motion == "Circle":
        return _motion_path("CircleClockwise" if rng.random() < 0.5 else "CircleCounterclockwise", rng, h, w)
    if motion == "Oscillate":
        span = rng.uniform(0.4, 0.6) * h
        return _closed([np.zeros(2), _unit(deg % 180) * span, np.zeros(2)]), "const"
    # ZigZag, Loop: the "Right" path of that kind turned by the drawn angle.
    path, mode = _motion_path(motion + "Right", rng, h, w)
    return MotionPath(_rotate(path.points, -deg), _rotate(path.offset[None], -deg)[0]), mode


def _motion_path(motion: str, rng: np.random.Generator, h: int, w: int) -> tuple[MotionPath, str]:
    """The path shape and size mode of a motion class (its speed is drawn in `sample_scene`)."""
    if motion in KIND_CLASSES and motion not in ("Approach", "Recede"):
        return _kind_path(motion, rng, h, w)
    t = np.linspace(0, 2 * np.pi, 97)
    if motion.startswith("Translate"):
        d = _unit(_DIRECTIONS[motion[len("Translate"):]])
        return _drifting(np.stack([np.zeros(2), d * w]), d * w), "const"
    if motion in ("CircleClockwise", "CircleCounterclockwise"):
        r = rng.uniform(0.2, 0.3) * h
        sign = 1.0 if motion == "CircleClockwise" else -1.0   # y down: increasing angle turns clockwise
        return _closed(np.stack([r * np.cos(sign * t), r * np.sin(sign * t)], 1)), "const"
    if motion.startswith("Oscillate"):
        deg = {"Horizontal": 0.0, "Vertical": 90.0, "Diagonal": 45.0, "AntiDiagonal": 135.0}[motion[9:]]
        span = rng.uniform(0.4, 0.6) * (w if deg == 0.0 else h)
        return _closed([np.zeros(2), _unit(deg) * span, np.zeros(2)]), "const"
    if motion.startswith("ZigZag") or motion.startswith("Wave") or motion.startswith("Loop"):
        kind = "ZigZag" if motion.startswith("ZigZag") else ("Wave" if motion.startswith("Wave") else "Loop")
        deg = _DIRECTIONS[motion[len(kind):]]
        if kind == "ZigZag":
            a = rng.uniform(0.12, 0.18) * h
            cell = np.array([[0, 0], [a, -a], [2 * a, 0]], np.float64)
            period = 2 * a
        elif kind == "Wave":
            a, period = rng.uniform(0.1, 0.15) * h, rng.uniform(0.5, 0.7) * h
            x = np.linspace(0, period, 65)
            cell = np.stack([x, -a * np.sin(2 * np.pi * x / period)], 1)
        else:   # a prolate cycloid: it advances while turning small loops
            b = rng.uniform(0.1, 0.14) * h
            a = b / 2.5
            cell = np.stack([a * t - b * np.sin(t), -b * np.cos(t) + b], 1)
            period = 2 * np.pi * a
        return _drifting(_rotate(cell, -deg), _rotate(np.array([[period, 0.0]]), -deg)[0]), "const"
    if motion in ("SquarePathClockwise", "SquarePathCounterclockwise"):
        a = rng.uniform(0.35, 0.5) * h
        pts = np.array([[0, 0], [a, 0], [a, a], [0, a], [0, 0]], np.float64)
        return _closed(pts if motion.endswith("Clockwise") and "Counter" not in motion else pts[::-1]), "const"
    if motion in ("TrianglePathClockwise", "TrianglePathCounterclockwise"):
        a = rng.uniform(0.4, 0.55) * h
        pts = np.array([[0, 0], [a, 0], [a / 2, a * math.sqrt(3) / 2], [0, 0]], np.float64)
        return _closed(pts if "Counter" not in motion else pts[::-1]), "const"
    if motion in ("FigureEight", "FigureEightVertical"):
        a = rng.uniform(0.25, 0.32) * h
        pts = np.stack([a * np.sin(t), 0.5 * a * np.sin(2 * t)], 1)
        return _closed(pts if motion == "FigureEight" else pts[:, ::-1]), "const"
    if motion in ("Approach", "Recede", "Pulse"):
        # The object also drifts at the common speed in a random direction, so that its centre moves exactly
        # as fast as in every other class.
        d = _unit(rng.uniform(0, 360))
        return _drifting(np.stack([np.zeros(2), d * w]), d * w), {"Approach": "grow", "Recede": "shrink",
                                                                   "Pulse": "pulse"}[motion]
    raise ValueError(f"unknown motion class {motion!r}; valid: {sorted(set(DEFAULT_CLASSES + KIND_CLASSES + ASLAN_CLASSES))}")


def sample_scene(spec: VideoSpec) -> Scene:
    """Draw every random parameter of a clip from its seeds (pure: the same spec gives the same scene).

    Args:
        spec: the clip to draw.
    """
    h, w = spec.size
    g = np.random.default_rng(np.random.SeedSequence(list(spec.group_seed)))
    c = np.random.default_rng(np.random.SeedSequence(list(spec.clip_seed)))
    sprite = _random_sprite(g, bold=True)
    base_size = g.uniform(*OBJECT_SIZE) * h
    background_seed = tuple(int(x) for x in g.integers(0, 2**31, 2))

    path, size_mode = _motion_path(spec.motion, c, h, w)
    n_frames = int(c.integers(LENGTH[0], LENGTH[1] + 1))
    speed = c.uniform(*SPREAD) * SPEED * h * KIND_SPEED.get(spec.motion, 1.0)
    growth = c.uniform(*SPREAD) * GROWTH
    size_range = (OBJECT_SIZE[0] * h, OBJECT_SIZE[1] * h)
    cycle = math.log(size_range[1] / size_range[0]) / growth
    size_phase = c.uniform(0, 2 * cycle)

    # Place the path so that, along every axis it does not drift on, it stays inside the frame where it fits
    # (centred at random otherwise); along a drifting axis any start is fine, the object wraps around.
    lo, hi = path.points.min(0), path.points.max(0)
    half = (base_size if size_mode == "const" else OBJECT_SIZE[1] * h) / 2
    anchor = np.empty(2)
    for i, lim in enumerate((w, h)):
        if abs(path.offset[i]) > 1e-6:
            anchor[i] = c.uniform(0, lim)
        else:
            a, b = half - lo[i], lim - half - hi[i]
            anchor[i] = c.uniform(a, b) if a < b else (lim - lo[i] - hi[i]) / 2
    seg = np.linalg.norm(np.diff(path.points, axis=0), axis=1)
    start = c.uniform(0, seg.sum())

    amp = c.uniform(0.2, 0.6, (2, 2)) * 0.012 * h
    jitter = np.stack([amp, c.uniform(0.01, 0.05, (2, 2)), c.uniform(0, 2 * np.pi, (2, 2))], -1)

    distractors = []
    for _ in range(int(c.integers(0, 3))):
        dsize = c.uniform(0.35, 0.55) * base_size
        v = _unit(c.uniform(0, 360)) * c.uniform(*SPREAD) * SPEED * h
        distractors.append((_random_sprite(c, bold=False), float(dsize),
                            np.array([c.uniform(0, w), c.uniform(0, h)]), v))
    noise = (float(c.uniform(2.0, 5.0)), tuple(int(x) for x in c.integers(0, 2**31, 2)))
    pace, period, phase = _PACES.get(spec.motion, "const"), 0.0, 0.0
    if pace != "const":   # drawn last, so the other classes' draws do not change
        period = float(c.uniform(*PACE_PERIOD))
        phase = float(c.uniform(0, period))
    return Scene(spec, n_frames, float(speed), float(growth), size_mode, float(base_size), size_range,
                 float(size_phase), path, anchor, float(start), jitter, sprite, background_seed,
                 tuple(distractors), *noise, pace, period, phase)


def _camera_jitter(scene: Scene) -> np.ndarray:
    """(T, 2) smooth hand-held camera offset in pixels: two slow sinusoids per axis."""
    t = np.arange(scene.n_frames, dtype=np.float64)[:, None, None]
    a, f, p = scene.jitter[..., 0], scene.jitter[..., 1], scene.jitter[..., 2]
    return (a * np.sin(2 * np.pi * f * t + p)).sum(-1)


def _wrap(xy: np.ndarray, h: int, w: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Wrap drifting positions around a frame padded by `margin` (objects leave fully, then re-enter)."""
    span = np.array([w + 2 * margin, h + 2 * margin])
    laps = np.floor((xy + margin) / span)
    return xy - laps * span, laps.astype(np.int64)


def pace_distance(pace: str, t: np.ndarray, period: float) -> np.ndarray:
    """Distance covered by time t (in frames) at a mean rate of 1 per frame, for a speed profile.

    "const": rate 1. Over each cycle u = t / period in [n, n + 1), f = u - n: "accelerate" rate 0.4 + 1.2 f
    (a sawtooth from 0.4x to 1.6x), "decelerate" 1.6 - 1.2 f, "stopgo" 1 - cos(2 pi f) (smooth bursts from rest
    to 2x). Every profile's mean rate is 1, so the clip's mean speed says nothing about the class.
    """
    t = np.asarray(t, np.float64)
    if pace == "const":
        return t
    u = t / period
    n = np.floor(u)
    f = u - n
    if pace == "accelerate":
        return period * (n + 0.4 * f + 0.6 * f * f)
    if pace == "decelerate":
        return period * (n + 1.6 * f - 0.6 * f * f)
    if pace == "stopgo":
        return period * (u - np.sin(2 * np.pi * u) / (2 * np.pi))
    raise ValueError(f"unknown pace {pace!r}; valid: const, accelerate, decelerate, stopgo")


def trajectory(scene: Scene) -> Track:
    """Ground truth of the main object per frame: centre, size and track ids (pure; no pixels rendered).

    Args:
        scene: a drawn scene.
    """
    h, w = scene.spec.size
    pts, off = scene.path.points, scene.path.offset
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = scene.start + scene.speed * pace_distance(scene.pace, np.arange(scene.n_frames) + scene.pace_phase,
                                                   scene.pace_period)
    laps, frac = np.divmod(s, cum[-1])
    xy = np.stack([np.interp(frac, cum, pts[:, i]) for i in (0, 1)], 1) + laps[:, None] * off + scene.anchor

    t = np.arange(scene.n_frames) + scene.size_phase
    lo, hi = scene.size_range
    cycle = math.log(hi / lo) / scene.growth
    cycles = np.floor(t / cycle)
    if scene.size_mode == "const":
        size = np.full(scene.n_frames, scene.base_size)
        cycles = np.zeros_like(cycles)
    elif scene.size_mode == "grow":
        size = lo * np.exp(scene.growth * (t - cycles * cycle))
    elif scene.size_mode == "shrink":
        size = hi * np.exp(-scene.growth * (t - cycles * cycle))
    else:   # pulse: log-size goes up and down at the same rate, with no jump
        phase = np.mod(t, 2 * cycle)
        size = lo * np.exp(scene.growth * np.minimum(phase, 2 * cycle - phase))
        cycles = np.zeros_like(cycles)

    track = cycles.astype(np.int64)
    if np.any(off):
        xy, wraps = _wrap(xy, h, w, size.max() / 2 + 1)
        track = track * 1_000_000 + wraps[:, 0] * 1000 + wraps[:, 1]
    return Track(xy + _camera_jitter(scene), size, track)


def ground_truth(spec: VideoSpec) -> Track:
    """The main object's centre, size and track ids per frame for a clip spec, without rendering it."""
    return trajectory(sample_scene(spec))


# ----------------------------------------------------------------------------------------------- rendering
_SUPER = 4   # supersampling factor of the shape masks: smooth anti-aliased edges


def _shape_polygons(shape: str, r: float) -> list[np.ndarray]:
    """Polygons (in a box of half-size r centred at 0) whose union is the shape; circles are fine polygons."""
    def regular(n: int, radius: float, start: float = -90.0) -> np.ndarray:
        a = np.radians(start + 360.0 * np.arange(n) / n)
        return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)

    if shape == "disc":
        return [regular(64, r)]
    if shape == "square":
        return [regular(4, r, 45.0)]
    if shape == "triangle":
        return [regular(3, r) + [0, 0.25 * r]]
    if shape == "pentagon":
        return [regular(5, r)]
    if shape == "hexagon":
        return [regular(6, r)]
    if shape == "star":
        outer, inner = regular(5, r), regular(5, 0.45 * r, -90.0 + 36.0)
        return [np.stack([outer, inner], 1).reshape(-1, 2)]
    if shape == "house":
        body = np.array([[-0.7, -0.1], [0.7, -0.1], [0.7, 1.0], [-0.7, 1.0]]) * r
        roof = np.array([[-0.95, -0.05], [0.0, -1.0], [0.95, -0.05]]) * r
        return [body, roof]
    if shape == "figure":   # an upright pictogram: head, trunk, two legs
        return [regular(32, 0.28 * r) + [0, -0.7 * r],
                np.array([[-0.42, -0.38], [0.42, -0.38], [0.36, 0.3], [-0.36, 0.3]]) * r,
                np.array([[-0.34, 0.25], [-0.08, 0.25], [-0.12, 1.0], [-0.38, 1.0]]) * r,
                np.array([[0.08, 0.25], [0.34, 0.25], [0.38, 1.0], [0.12, 1.0]]) * r]
    raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")


def _sprite_rgba(sprite: Sprite, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """The sprite as an (S, S, 3) float32 RGB image and an (S, S, 1) float32 alpha, S = diameter + 4."""
    n = diameter + 4
    big = n * _SUPER
    mask = np.zeros((big, big), np.uint8)
    r = diameter * _SUPER / 2
    for poly in _shape_polygons(sprite.shape, r):
        pts = _rotate(poly, sprite.angle) + big / 2
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    border = max(1, round(diameter * 0.06)) * _SUPER
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border + 1,) * 2))
    alpha = cv2.resize(mask, (n, n), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    edge = cv2.resize(mask - np.minimum(mask, inner), (n, n), interpolation=cv2.INTER_AREA
                      ).astype(np.float32)[..., None] / 255

    # The texture lives in the object's frame: it moves and scales with the object.
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) - n / 2) / (sprite.texture_scale * diameter)
    ang = math.radians(sprite.texture_angle)
    u, v = xx * math.cos(ang) + yy * math.sin(ang), -xx * math.sin(ang) + yy * math.cos(ang)
    if sprite.texture == "stripes":
        pattern = np.sin(2 * np.pi * u) > 0
    elif sprite.texture == "checker":
        pattern = (np.floor(u) + np.floor(v)) % 2 == 0
    elif sprite.texture == "dots":
        pattern = (np.mod(u, 1) - 0.5) ** 2 + (np.mod(v, 1) - 0.5) ** 2 < 0.09
    else:
        pattern = np.sin(2 * np.pi * np.hypot(xx, yy)) > 0
    fill, second, outline = (np.array(c, np.float32) for c in sprite.colors)
    rgb = np.where(pattern[..., None], fill, second).astype(np.float32)
    rgb = rgb * (1 - edge) + outline * edge
    return rgb, alpha


def _background(scene: Scene, pad: int) -> np.ndarray:
    """A static (H + 2 pad, W + 2 pad, 3) float32 scene: smooth colour field, fine grain, dim canonical shapes."""
    h, w = scene.spec.size
    hh, ww = h + 2 * pad, w + 2 * pad
    rng = np.random.default_rng(np.random.SeedSequence(list(scene.background_seed)))
    c1, c2 = (np.array(_random_color(rng, (0.1, 0.6), (0.25, 0.75)), np.float32) for _ in range(2))
    field_ = cv2.resize(rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7))), np.float32), (ww, hh),
                        interpolation=cv2.INTER_CUBIC)
    img = c1 + (c2 - c1) * np.clip(field_, 0, 1)[..., None]
    grain = cv2.resize(rng.random((hh // 6 + 1, ww // 6 + 1), np.float32), (ww, hh),
                       interpolation=cv2.INTER_LINEAR)
    img += (grain[..., None] - 0.5) * rng.uniform(15, 35)
    for _ in range(int(rng.integers(4, 9))):
        item = _random_sprite(rng, bold=False)
        d = int(rng.uniform(0.06, 0.2) * h)
        rgb, alpha = _sprite_rgba(item, d)
        x, y = int(rng.integers(0, ww - d - 4)), int(rng.integers(0, hh - d - 4))
        a = alpha * rng.uniform(0.15, 0.35)   # dim, so the moving object stays the salient one
        img[y:y + d + 4, x:x + d + 4] = img[y:y + d + 4, x:x + d + 4] * (1 - a) + rgb * a
    return img


def _paste(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, center: np.ndarray, scale: float) -> None:
    """Alpha-blend a sprite into `frame` in place, centred at sub-pixel `center`, scaled by `scale`."""
    h, w = frame.shape[:2]
    n = rgb.shape[0]
    half = scale * n / 2
    x0, y0 = max(int(center[0] - half) - 1, 0), max(int(center[1] - half) - 1, 0)
    x1, y1 = min(int(center[0] + half) + 2, w), min(int(center[1] + half) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return
    m = np.array([[scale, 0, center[0] - x0 - scale * n / 2], [0, scale, center[1] - y0 - scale * n / 2]])
    rgba = np.concatenate([rgb, alpha], -1)
    out = cv2.warpAffine(rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
    a = out[..., 3:]
    roi = frame[y0:y1, x0:x1]
    roi *= 1 - a
    roi += out[..., :3] * a


def render_frames(scene: Scene) -> tuple[np.ndarray, Track]:
    """Paint a drawn scene.

    Args:
        scene: from `sample_scene`.

    Returns:
        frames: (T, H, W, 3) uint8 RGB.
        track: the main object's ground truth, as `trajectory(scene)`.
    """
    h, w = scene.spec.size
    track = trajectory(scene)
    jitter = _camera_jitter(scene)
    pad = int(math.ceil(np.abs(jitter).max())) + 2
    background = _background(scene, pad)
    # Render the main sprite once at its largest size; warpAffine scales it down per frame.
    ref = int(math.ceil(track.size.max()))
    rgb, alpha = _sprite_rgba(scene.sprite, ref)
    sprite_scale = 1.0 / ref
    drgba = [(_sprite_rgba(s, int(math.ceil(d))), d) for s, d, _, _ in scene.distractors]
    noise_rng = np.random.default_rng(np.random.SeedSequence(list(scene.noise_seed)))
    frames = np.empty((scene.n_frames, h, w, 3), np.uint8)
    for t in range(scene.n_frames):
        m = np.array([[1, 0, pad - jitter[t, 0]], [0, 1, pad - jitter[t, 1]]])
        frame = cv2.warpAffine(background, m, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP)
        for ((drgb, dalpha), d), (_, _, start, vel) in zip(drgba, scene.distractors):
            xy, _ = _wrap(start + vel * t, h, w, d / 2 + 1)
            _paste(frame, drgb, dalpha, xy + jitter[t], 1.0)
        _paste(frame, rgb, alpha, track.center[t], track.size[t] * sprite_scale)
        frame += noise_rng.standard_normal((h, w, 3), np.float32) * scene.noise_sigma
        np.clip(frame, 0, 255, out=frame)
        frames[t] = frame
    return frames, track


def render_video(spec: VideoSpec) -> tuple[np.ndarray, Track]:
    """Draw and paint one clip: (T, H, W, 3) uint8 RGB frames and the main object's ground truth."""
    return render_frames(sample_scene(spec))


# ----------------------------------------------------------------------------------------------- encoding
def encode_video(frames: np.ndarray, path: Path, codec: str = "xvid") -> None:
    """Encode RGB frames to a video file through ffmpeg's stdin (single-threaded, so the bytes are repeatable).

    Args:
        frames: (T, H, W, 3) uint8 RGB, H and W even.
        path: output file; written to a temporary name first, then renamed, so a partial file never remains.
        codec: "xvid" (MPEG-4 ASP in AVI, fourcc XVID, as UCF101) or "h264" (MP4).
    """
    if codec not in CODECS:
        raise ValueError(f"codec {codec!r} is not one of {tuple(CODECS)}")
    t, h, w, _ = frames.shape
    lib, ext = CODECS[codec]
    extra = {"vtag": "XVID", "qscale:v": 4} if codec == "xvid" else {"crf": 20, "preset": "medium"}
    tmp = path.with_name(path.name + ".part")
    stream = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=FPS)
              .output(str(tmp), format="avi" if ext == ".avi" else "mp4", vcodec=lib, pix_fmt="yuv420p",
                      threads=1, r=FPS, fflags="+bitexact", **{"flags:v": "+bitexact"}, **extra)
              .global_args("-nostdin", "-loglevel", "error")
              .overwrite_output())
    try:
        stream.run(cmd=ffmpeg_exe(), input=np.ascontiguousarray(frames).tobytes(), capture_stdout=True,
                   capture_stderr=True)
    except ffmpeg.Error as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed to encode {path}: {exc.stderr.decode(errors='replace')[-800:]}") from None
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class PlannedVideo:
    """One clip of a planned dataset.

    Args:
        rel_path: POSIX path relative to OUT.
        class_name: the class name as the layout writes it.
        label: 0-based class index.
        group: 1-based group number within the class (clips of a group share background and object).
        clip: 1-based clip number within the group.
        spec: what to render.
    """

    rel_path: str
    class_name: str
    label: int
    group: int
    clip: int
    spec: VideoSpec


def hmdb_name(motion: str) -> str:
    """CamelCase motion class -> HMDB51-style lowercase_with_underscores name (TranslateLeft -> translate_left)."""
    return "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(motion))


def group_sizes(videos_per_class: int) -> list[int]:
    """Clips per group, like UCF101's 4-7: about 5 per group, at least 3 groups, spread evenly."""
    n_groups = max(3, round(videos_per_class / 5))
    base, extra = divmod(videos_per_class, n_groups)
    return [base + (1 if g < extra else 0) for g in range(n_groups)]


def split_test_groups(n_groups: int, split: int, fraction: float) -> set[int]:
    """The 1-based test groups of a split (1..3): consecutive, disjoint blocks, as UCF101's g01-07/g08-14/g15-21.

    Args:
        n_groups: groups per class.
        split: 1, 2 or 3.
        fraction: share of the groups to test on (UCF101 7/25, HMDB51 0.3).
    """
    k = max(1, min(round(n_groups * fraction), n_groups // 3))
    return set(range((split - 1) * k + 1, split * k + 1))


def plan_dataset(config: SynthConfig) -> list[PlannedVideo]:
    """Every clip of the dataset, its path in the layout, label, group and render spec (no rendering)."""
    motions = class_pool(config.layout, config.class_set)[: config.classes]
    ext = CODECS[config.codec][1]
    layout_code = LAYOUTS.index(config.layout)
    sizes = group_sizes(config.videos_per_class)
    out = []
    sample = 0
    for label, motion in enumerate(motions):
        for g, n in enumerate(sizes, start=1):
            for clip in range(1, n + 1):
                spec = VideoSpec(motion, config.size, (config.seed, layout_code, label, g),
                                 (config.seed, layout_code, label, g, clip))
                if config.layout == "ucf101":
                    name, rel = motion, f"{motion}/v_{motion}_g{g:02d}_c{clip:02d}{ext}"
                elif config.layout == "hmdb51":
                    name = hmdb_name(motion)
                    rel = f"{name}/{name}_g{g:02d}_c{clip:02d}{ext}"
                else:
                    sample += 1
                    name, rel = motion, f"{sample:04d}{ext}"
                out.append(PlannedVideo(rel, name, label, g, clip, spec))
    return out


def _write_text(path: Path, lines: list[str], newline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode("ascii"))


def write_ucf101_splits(out: Path, videos: list[PlannedVideo], classes: list[str]) -> None:
    """`ucfTrainTestlist/` with classInd.txt, trainlist0N.txt, testlist0N.txt (CRLF, as the official files)."""
    d = out / "ucfTrainTestlist"
    _write_text(d / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)], "\r\n")
    n_groups = max(v.group for v in videos)
    for split in (1, 2, 3):
        test = split_test_groups(n_groups, split, 7 / 25)
        _write_text(d / f"trainlist0{split}.txt",
                    [f"{v.rel_path} {v.label + 1}" for v in videos if v.group not in test], "\r\n")
        _write_text(d / f"testlist0{split}.txt", [v.rel_path for v in videos if v.group in test], "\r\n")


def write_hmdb51_splits(out: Path, videos: list[PlannedVideo], classes: list[str]) -> None:
    """`testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`: `<name> <1 train|2 test> ` lines (LF)."""
    d = out / "testTrainMulti_7030_splits"
    n_groups = max(v.group for v in videos)
    for split in (1, 2, 3):
        test = split_test_groups(n_groups, split, 0.3)
        for c in classes:
            _write_text(d / f"{c}_test_split{split}.txt",
                        [f"{Path(v.rel_path).name} {2 if v.group in test else 1} "
                         for v in videos if v.class_name == c], "\n")


def aslan_pairs(videos: list[PlannedVideo], n_classes: int, pairs_per_fold: int, seed: int
                ) -> list[tuple[int, str, str, int, int, int]]:
    """Balanced same / not-same pairs in 10 folds whose classes are disjoint, as ASLAN View-2.

    Classes are dealt at random to the 10 folds; a fold's pairs use only its classes. As in ASLAN, a valid
    pair is two clips not cut from the same source (here: not of the same group).

    Returns:
        Rows (fold, first id, second id, same 0/1, first action id, second action id), ids as 4-digit text.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
    order = rng.permutation(n_classes)
    folds = [sorted(order[i::10].tolist()) for i in range(10)]
    by_class = {lab: [v for v in videos if v.label == lab] for lab in range(n_classes)}
    rows = []
    for fold, labels in enumerate(folds, start=1):
        if len(labels) < 2:
            raise ValueError(f"fold {fold} has one class; ASLAN not-same pairs need >= 2 classes per fold "
                             f"(use --classes >= 20, got {n_classes})")
        same = [(a, b) for lab in labels for i, a in enumerate(by_class[lab]) for b in by_class[lab][i + 1:]
                if a.group != b.group]
        diff = [(a, b) for i, la in enumerate(labels) for lb in labels[i + 1:] for a in by_class[la]
                for b in by_class[lb]]
        half = pairs_per_fold // 2
        if len(same) < half or len(diff) < half:
            raise ValueError(f"fold {fold} offers {len(same)} same and {len(diff)} not-same pairs, fewer than "
                             f"the {half} each that pairs_per_fold={pairs_per_fold} needs; "
                             "raise --videos-per-class or lower --pairs-per-fold")
        picked = [(p, 1) for p in (same[i] for i in rng.choice(len(same), half, replace=False))]
        picked += [(p, 0) for p in (diff[i] for i in rng.choice(len(diff), half, replace=False))]
        for k in rng.permutation(len(picked)):
            (a, b), is_same = picked[k]
            if rng.random() < 0.5:
                a, b = b, a
            rows.append((fold, Path(a.rel_path).stem, Path(b.rel_path).stem, is_same, a.label + 1, b.label + 1))
    return rows


def write_aslan_files(out: Path, videos: list[PlannedVideo], classes: list[str], config: SynthConfig) -> None:
    """`pairs.csv` (fold,first,second,same,first_action,second_action) and `Actions_List.txt` (line k = id k)."""
    rows = aslan_pairs(videos, len(classes), config.pairs_per_fold, config.seed)
    header = "fold,first,second,same,first_action,second_action"
    _write_text(out / "pairs.csv", [header] + [",".join(str(x) for x in r) for r in rows], "\n")
    _write_text(out / "Actions_List.txt", list(classes), "\n")


# ----------------------------------------------------------------------------------------------- generation
def _make_one(video: PlannedVideo, out: Path, codec: str) -> int:
    path = out / video.rel_path
    if path.is_file():   # written atomically by an interrupted earlier run with the same config
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, _ = render_video(video.spec)
    encode_video(frames, path, codec)
    return len(frames)


@dataclass(frozen=True)
class SynthResult:
    """What `generate` did: the number of clips, frames written this run, and whether it was already done."""

    videos: int
    frames_written: int
    reused: bool
    classes: tuple[str, ...] = field(default=())


_CONFIG_FILE = ".synth_config.json"
_DONE_FILE = ".synth_done"


def generate(config: SynthConfig, out: str | os.PathLike, jobs: int | None = None) -> SynthResult:
    """Render, encode and lay out the whole synthetic dataset in `out`, in parallel over clips.

    A finished folder with the same config is reused at once; an interrupted one resumes (every file is
    written atomically); a folder holding something else is refused.

    Args:
        config: what to generate.
        out: the dataset root to create.
        jobs: worker processes (joblib); None = every core available to this process.
    """
    from joblib import Parallel, delayed

    out = Path(out)
    want = json.dumps(asdict(config), sort_keys=True)
    cfg_file = out / _CONFIG_FILE
    videos = plan_dataset(config)
    classes = list(dict.fromkeys(v.class_name for v in videos))
    if out.exists() and any(out.iterdir()):
        have = cfg_file.read_text() if cfg_file.is_file() else None
        if have != want:
            raise ValueError(f"output folder {out} is not empty and does not hold a synthetic set made with this "
                             f"config ({'no ' + _CONFIG_FILE if have is None else 'config differs'}); "
                             "remove it or choose another folder")
        if (out / _DONE_FILE).is_file():
            return SynthResult(len(videos), 0, True, tuple(classes))
    out.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(want)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be >= 1")
    # Longest first keeps both workers busy to the end.
    order = sorted(videos, key=lambda v: -sample_scene(v.spec).n_frames)
    counts = Parallel(n_jobs=jobs, batch_size=4)(delayed(_make_one)(v, out, config.codec) for v in order)
    if config.layout == "ucf101":
        write_ucf101_splits(out, videos, classes)
    elif config.layout == "hmdb51":
        write_hmdb51_splits(out, videos, classes)
    else:
        write_aslan_files(out, videos, classes, config)
    (out / _DONE_FILE).write_text("")
    return SynthResult(len(videos), int(sum(counts)), False, tuple(classes))


def write_contact_sheet(out: str | os.PathLike, config: SynthConfig, png: str | os.PathLike,
                        frames_per_row: int = 6, step: int = 8) -> Path:
    """A PNG with `frames_per_row` decoded frames (every `step`-th) of the first clip of each class.

    Args:
        out: a dataset root made by `generate` with `config`.
        config: the config it was made with.
        png: the image to write.
        frames_per_row: frames shown per class.
        step: source frames between shown frames.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, png = Path(out), Path(png)
    firsts = {}
    for v in plan_dataset(config):
        firsts.setdefault(v.class_name, v)
    rows = len(firsts)
    fig, axes = plt.subplots(rows, frames_per_row, figsize=(1.9 * frames_per_row, 1.5 * rows), squeeze=False)
    for r, (name, v) in enumerate(firsts.items()):
        frames = read_video_rgb(out / v.rel_path)
        for c in range(frames_per_row):
            ax = axes[r, c]
            ax.imshow(frames[min(c * step, len(frames) - 1)])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(f"t={c * step}", fontsize=8)
    kinds = " --class-set kinds" if config.class_set != "directions" and config.layout != "aslan" else ""
    fig.suptitle(f"v3s-prep synth --layout {config.layout}{kinds} --seed {config.seed}: first clip of each class, "
                 f"every {step}th frame", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png

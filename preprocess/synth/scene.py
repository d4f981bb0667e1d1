"""The random draw of one clip: `sample_scene(spec)` draws every parameter from the clip's seeds, and
`trajectory(scene)` is the ground truth (the main object's centre and size per frame)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import (ASLAN_CLASSES, DEFAULT_CLASSES, GROWTH, KIND_CLASSES, KIND_SPEED, LENGTH, OBJECT_SIZE, PACE_PERIOD,
                     SHAPES, SPEED, SPREAD, TEXTURES)

@dataclass(frozen=True)
class VideoSpec:
    """One clip to make: its motion class, frame size and the seeds of its random draw.

    Args:
        motion: the motion class (a name in DEFAULT_CLASSES, KIND_CLASSES or ASLAN_CLASSES).
        size: (height, width) in pixels.
        group_seed: entropy shared by a group's clips: background, object shape, colours, texture, size.
        clip_seed: entropy of this clip alone: length, speed, start, jitter, distractors, noise.
        clutter: "full" or "clean" (SynthConfig.clutter).
    """

    motion: str
    size: tuple[int, int]
    group_seed: tuple[int, ...]
    clip_seed: tuple[int, ...]
    clutter: str = "full"


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

    full = spec.clutter == "full"   # "clean" draws no distractors and no noise level (the draws after them move)
    distractors = []
    for _ in range(int(c.integers(0, 3)) if full else 0):
        dsize = c.uniform(0.35, 0.55) * base_size
        v = _unit(c.uniform(0, 360)) * c.uniform(*SPREAD) * SPEED * h
        distractors.append((_random_sprite(c, bold=False), float(dsize),
                            np.array([c.uniform(0, w), c.uniform(0, h)]), v))
    noise = (float(c.uniform(2.0, 5.0)) if full else 0.0, tuple(int(x) for x in c.integers(0, 2**31, 2)))
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

"""Painting a drawn clip into pixels (`render_frames`), and encoding frames to a video file with ffmpeg."""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from v3s.shared.video import ffmpeg_exe

from .config import CODECS, FPS, SHAPES
from .scene import (Scene, Sprite, Track, VideoSpec, _camera_jitter, _random_color, _random_sprite, _rotate,
                    _wrap, sample_scene, trajectory)

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
    """A static (H + 2 pad, W + 2 pad, 3) float32 scene: smooth colour field, fine grain, dim canonical shapes (clutter
    "clean": the field's first colour alone)."""
    h, w = scene.spec.size
    hh, ww = h + 2 * pad, w + 2 * pad
    rng = np.random.default_rng(np.random.SeedSequence(list(scene.background_seed)))
    c1, c2 = (np.array(_random_color(rng, (0.1, 0.6), (0.25, 0.75)), np.float32) for _ in range(2))
    field_ = cv2.resize(rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7))), np.float32), (ww, hh),
                        interpolation=cv2.INTER_CUBIC)
    img = c1 + (c2 - c1) * np.clip(field_, 0, 1)[..., None]
    if scene.spec.clutter == "clean":   # one plain colour: no field, grain or static shapes
        return np.broadcast_to(c1, img.shape).copy()
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
        if scene.noise_sigma:   # 0 in clutter "clean"
            frame += noise_rng.standard_normal((h, w, 3), np.float32) * scene.noise_sigma
        np.clip(frame, 0, 255, out=frame)
        frames[t] = frame
    return frames, track


def render_video(spec: VideoSpec) -> tuple[np.ndarray, Track]:
    """Draw and paint one clip: (T, H, W, 3) uint8 RGB frames and the main object's ground truth."""
    return render_frames(sample_scene(spec))


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

"""V3S spatial transformations and clip geometry as one homography per clip, applied in one resampling pass.

Paper section 3.1 and 4.1.2. The pretext pipeline is: resize the frame to a 224x224 canvas, apply the class's
homography (identity, scale (a, b) or projection (side, c)), crop 112x112 at random inside the transformed image
(projection: the l x l square at the head end, l = c * 224), resize the crop to the output size. Here these four
maps are composed into one 3x3 matrix per clip that takes an output pixel to a source pixel, and the output is
sampled straight from the stored frame with `grid_sample`, so every output pixel is interpolated once.

Coordinates are continuous with pixel (i, j) covering [j, j+1] x [i, i+1] (its centre at (j + 0.5, i + 0.5)),
so the frame's corners are (0, 0) and (W, H) exactly as in the paper; this is `grid_sample`'s
align_corners=False convention. Finetune and test geometry (random crop + flip, centre crop) are homographies on
the same path. Transforms are pure: parameters are drawn first on the CPU from a `torch.Generator`, then applied
on the clips' device; inputs are never modified.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .labels import LabelSpace, SpatialClass

CANVAS = 224  # the paper resizes every frame to 224 x 224 before the spatial transform
CROP = 112  # ... and crops 112 x 112 from the transformed frame
# Kinetics-400 statistics of RGB in [0, 1], the ones torchvision's video models (R(2+1)D, R3D) use.
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


def frame_corners(width: float, height: float) -> np.ndarray:
    """The paper's corner order (x0,y0)=(0,0), (0,H), (W,H), (W,0). Returns float64 (4, 2)."""
    return np.array([[0, 0], [0, height], [width, height], [width, 0]], dtype=np.float64)


def transformed_corners(cls: SpatialClass, size: float = CANVAS) -> np.ndarray:
    """Where the paper sends the four corners of a size x size frame under one spatial class.

    Scale: (0,0), (0,bH), (aW,bH), (aW,0). Projection with the right side as head end: (0,0), (0,H),
    (W,(H+cH)/2), (W,(H-cH)/2); the other sides are its mirror images / rotations.
    Returns float64 (4, 2), in `frame_corners` order.
    """
    s = float(size)
    if cls.kind == "identity":
        return frame_corners(s, s)
    if cls.kind == "scale":
        return frame_corners(cls.a * s, cls.b * s)
    if cls.kind != "projection":
        raise ValueError(f"unknown spatial class kind {cls.kind!r}")
    lo, hi = (s - cls.c * s) / 2, (s + cls.c * s) / 2
    by_side = {
        "right": [[0, 0], [0, s], [s, hi], [s, lo]],
        "left": [[0, lo], [0, hi], [s, s], [s, 0]],
        "top": [[lo, 0], [0, s], [s, s], [hi, 0]],
        "bottom": [[0, 0], [lo, s], [hi, s], [s, 0]],
    }
    if cls.side not in by_side:
        raise ValueError(f"unknown projection side {cls.side!r}; valid: {sorted(by_side)}")
    return np.array(by_side[cls.side], dtype=np.float64)


def solve_homography(src_corners: torch.Tensor, dst_corners: torch.Tensor) -> torch.Tensor:
    """Homographies taking four source corners to four destination corners: the paper's 8 x 8 linear system.

    Args:
        src_corners: (B, 4, 2) points (x_i, y_i).
        dst_corners: (B, 4, 2) points (u_i, v_i).
    Returns: (B, 3, 3) with m8 = 1, in the inputs' dtype and device (use float64 for accuracy).
    """
    if src_corners.shape != dst_corners.shape or src_corners.shape[-2:] != (4, 2):
        raise ValueError(f"corners must both be (B, 4, 2), got {tuple(src_corners.shape)}, {tuple(dst_corners.shape)}")
    x, y = src_corners[..., 0], src_corners[..., 1]
    u, v = dst_corners[..., 0], dst_corners[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=-2)  # (B, 8, 8)
    m = torch.linalg.solve(a, torch.cat([u, v], dim=-1))  # (B, 8)
    return torch.cat([m, torch.ones_like(m[..., :1])], dim=-1).reshape(-1, 3, 3)


def class_homographies(classes: list[SpatialClass], size: float = CANVAS) -> torch.Tensor:
    """Forward homographies (canvas -> transformed canvas) of a list of spatial classes. Returns float64 (B, 3, 3)."""
    src = torch.from_numpy(np.stack([frame_corners(size, size)] * len(classes)))
    dst = torch.from_numpy(np.stack([transformed_corners(c, size) for c in classes]))
    return solve_homography(src, dst)


def crop_boxes(labels: torch.Tensor, label_space: LabelSpace, uniform: torch.Tensor,
               canvas: int = CANVAS, crop: int = CROP) -> torch.Tensor:
    """Crop squares (x0, y0, side) in transformed-canvas coordinates, one per clip.

    Identity and scale: a crop x crop square at an integer offset drawn from `uniform` anywhere inside the
    transformed image [0, a*canvas] x [0, b*canvas]. Projection: the l x l square, l = c * canvas, centred on
    the head end's axis and touching the head end; it lies inside the trapezoid, so no pixel is out of frame.

    Args:
        labels: (B,) long spatial class indices.
        label_space: gives the classes.
        uniform: (B, 2) float in [0, 1): the random draw for the (x, y) offset; unused by projection classes.
        canvas: side of the square canvas the paper resizes to.
        crop: crop side for identity and scale.
    Returns: float64 (B, 3).
    """
    boxes = []
    for lab, (ux, uy) in zip(labels.tolist(), uniform.tolist()):
        cls = label_space.spatial_classes[lab]
        if cls.kind == "projection":
            side = cls.c * canvas
            mid = (canvas - side) / 2
            x0, y0 = {"right": (canvas - side, mid), "left": (0.0, mid),
                      "top": (mid, 0.0), "bottom": (mid, canvas - side)}[cls.side]
        else:
            room_x, room_y = math.floor(cls.a * canvas - crop), math.floor(cls.b * canvas - crop)
            if room_x < 0 or room_y < 0:
                raise ValueError(f"crop {crop} does not fit in {cls.name} of a {canvas} canvas")
            x0, y0, side = math.floor(ux * (room_x + 1)), math.floor(uy * (room_y + 1)), crop
        boxes.append((x0, y0, side))
    return torch.tensor(boxes, dtype=torch.float64).reshape(-1, 3)


def pretext_homographies(labels: torch.Tensor, label_space: LabelSpace, boxes: torch.Tensor,
                         in_hw: tuple[int, int], out_size: int = 112, canvas: int = CANVAS) -> torch.Tensor:
    """Compose crop-resize, inverse class transform and inverse canvas resize into output -> source maps.

    Args:
        labels: (B,) long spatial class indices.
        label_space: gives the classes.
        boxes: (B, 3) crop squares (x0, y0, side) from `crop_boxes`.
        in_hw: (H, W) of the stored frames.
        out_size: output side in pixels.
        canvas: side of the square canvas the paper resizes to.
    Returns: float64 (B, 3, 3) taking output pixel coordinates to source pixel coordinates.
    """
    h, w = in_hw
    b = labels.shape[0]
    classes = [label_space.spatial_classes[i] for i in labels.tolist()]
    fwd = class_homographies(classes, canvas) if b else torch.zeros(0, 3, 3, dtype=torch.float64)
    crop = torch.zeros(b, 3, 3, dtype=torch.float64)
    crop[:, 0, 0] = crop[:, 1, 1] = boxes[:, 2] / out_size
    crop[:, 0, 2], crop[:, 1, 2], crop[:, 2, 2] = boxes[:, 0], boxes[:, 1], 1.0
    unresize = torch.diag(torch.tensor([w / canvas, h / canvas, 1.0], dtype=torch.float64))
    return unresize @ torch.linalg.inv(fwd) @ crop


def pretext_geometry(labels: torch.Tensor, label_space: LabelSpace, uniform: torch.Tensor, in_hw: tuple[int, int],
                     out_size: int = 112, canvas: int = CANVAS, crop: int = CROP) -> torch.Tensor:
    """The output -> source homographies of V3S clips, given their spatial labels and crop draws.

    Args:
        labels: (B,) long spatial class indices.
        label_space: gives the classes.
        uniform: (B, 2) float in [0, 1): the crop offset draws (`crop_boxes`).
        in_hw: (H, W) of the stored frames.
        out_size: output side in pixels.
        canvas, crop: the paper's 224 canvas and 112 crop (S3D-G: 256 and 224).
    Returns: float64 (B, 3, 3) on the CPU.
    """
    labels = labels.detach().cpu().long()
    if labels.ndim != 1:
        raise ValueError(f"labels must be (B,), got shape {tuple(labels.shape)}")
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < label_space.n_spatial):
        raise ValueError(f"spatial labels must lie in [0, {label_space.n_spatial}), got {labels.tolist()}")
    boxes = crop_boxes(labels, label_space, torch.as_tensor(uniform, dtype=torch.float64), canvas, crop)
    return pretext_homographies(labels, label_space, boxes, in_hw, out_size, canvas)


def sample_spatial_params(labels: torch.Tensor, label_space: LabelSpace, generator: torch.Generator | None,
                          in_hw: tuple[int, int], out_size: int = 112, canvas: int = CANVAS,
                          crop: int = CROP) -> torch.Tensor:
    """Draw the crop positions for a batch of spatial labels with `generator`; `pretext_geometry` of them.

    Args:
        labels: (B,) long spatial class indices (moved to the CPU: a host sync if they live on a GPU).
        label_space: gives the classes.
        generator: CPU torch.Generator for the crop offsets (None: the global one).
        in_hw, out_size, canvas, crop: see `pretext_geometry`.
    Returns: float64 (B, 3, 3) on the CPU.
    """
    uniform = torch.rand(len(labels), 2, generator=generator, dtype=torch.float64)
    return pretext_geometry(labels, label_space, uniform, in_hw, out_size, canvas, crop)


def train_geometry(draw: torch.Tensor, in_hw: tuple[int, int], out_size: int = 112, flip: bool = True) -> torch.Tensor:
    """Finetuning geometry: an out_size square at a drawn integer offset, horizontally flipped with p = 0.5.

    The store already holds frames at the training resolution (128x171), so there is no resize.

    Args:
        draw: (B, 3) float in [0, 1): x offset, y offset, flip (flipped below 0.5).
        in_hw: (H, W) of the stored frames.
        out_size: crop side.
        flip: False never flips (labels that depend on left/right, e.g. the synthetic set's directions); the
            crops do not change with it.
    Returns: float64 (B, 3, 3) output -> source homographies (pixel-exact: no interpolation happens).
    """
    h, w = in_hw
    if h < out_size or w < out_size:
        raise ValueError(f"frames {h}x{w} are smaller than the {out_size} crop")
    draw = torch.as_tensor(draw, dtype=torch.float64).reshape(-1, 3)
    batch = draw.shape[0]
    x0 = torch.floor(draw[:, 0] * (w - out_size + 1))
    y0 = torch.floor(draw[:, 1] * (h - out_size + 1))
    flip = (draw[:, 2] < 0.5) & flip
    m = torch.zeros(batch, 3, 3, dtype=torch.float64)
    m[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    m[:, 0, 2] = torch.where(flip, x0 + out_size, x0)
    m[:, 1, 1], m[:, 1, 2], m[:, 2, 2] = 1.0, y0, 1.0
    return m


def train_geometry_params(batch: int, in_hw: tuple[int, int], out_size: int = 112,
                          generator: torch.Generator | None = None, flip: bool = True) -> torch.Tensor:
    """`train_geometry` of `batch` draws made with `generator` (None: the global one)."""
    return train_geometry(torch.rand(batch, 3, generator=generator, dtype=torch.float64), in_hw, out_size, flip)


def center_crop_params(batch: int, in_hw: tuple[int, int], out_size: int = 112) -> torch.Tensor:
    """Test geometry: the centred out_size square (offset rounded as torchvision's center_crop does).

    Args:
        batch: number of clips B.
        in_hw: (H, W) of the stored frames.
        out_size: crop side.
    Returns: float64 (B, 3, 3) output -> source homographies.
    """
    h, w = in_hw
    if h < out_size or w < out_size:
        raise ValueError(f"frames {h}x{w} are smaller than the {out_size} crop")
    m = torch.eye(3, dtype=torch.float64).repeat(batch, 1, 1)
    m[:, 0, 2], m[:, 1, 2] = int(round((w - out_size) / 2)), int(round((h - out_size) / 2))
    return m


def sampling_coords(homographies: torch.Tensor, out_size: int, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Source coordinates (x, y) of every output pixel centre (pixel (i, j) spans [j, j+1] x [i, i+1]).

    Args:
        homographies: (B, 3, 3) output -> source maps; on the CPU they are cast there and copied to a CUDA
            `device` pinned and non_blocking (the one host-to-device copy of a training step's warp).
        out_size: output side.
        device: where the coordinates are made (None: the homographies' device).
        dtype: their dtype.
    Returns: (B, out_size, out_size, 2) on `device`.
    """
    device = homographies.device if device is None else torch.device(device)
    centres = torch.arange(out_size, device=device, dtype=dtype) + 0.5
    gy, gx = torch.meshgrid(centres, centres, indexing="ij")
    pix = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(-1, 3)  # (N, 3)
    src = pix @ to_device(homographies.to(dtype), device).transpose(1, 2)  # (B, N, 3)
    return (src[..., :2] / src[..., 2:]).reshape(-1, out_size, out_size, 2)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small CPU tensor to a CUDA device without a host-device sync: pinned, then non_blocking.

    A pageable copy (`.to(device)`, `torch.tensor(..., device=...)`) waits for the GPU every step.

    Args:
        x: any tensor; returned as is when already on `device`.
        device: the target device.
    """
    if x.device == device:
        return x
    if x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


_NORM_CONSTANTS: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def _norm_constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, bias) of `normalize`, each (3,), made once per device and dtype: building them every step from
    Python lists would be a blocking host-device copy each time."""
    key = (device, dtype)
    if key not in _NORM_CONSTANTS:
        std = torch.tensor(STD, device=device, dtype=dtype)
        _NORM_CONSTANTS[key] = 1.0 / (255.0 * std), -torch.tensor(MEAN, device=device, dtype=dtype) / std
    return _NORM_CONSTANTS[key]


def source_boxes(homographies: torch.Tensor, out_size: int, in_hw: tuple[int, int]) -> torch.Tensor:
    """Integer source rectangle (x0, y0, x1, y1) that holds every pixel a clip's warp reads, clipped to the frame.

    A homography maps the output square to a convex quadrilateral, so the extremes are the images of the four
    corner pixel centres; one pixel of margin covers the bilinear neighbours.

    Args:
        homographies: (B, 3, 3) output -> source maps.
    Returns: int64 (B, 4) on the CPU.
    """
    h, w = in_hw
    c = [0.5, out_size - 0.5]
    corners = torch.tensor([[x, y, 1.0] for y in c for x in c], dtype=torch.float64)
    src = corners @ homographies.detach().cpu().double().transpose(1, 2)  # (B, 4, 3)
    xy = src[..., :2] / src[..., 2:]
    lo = torch.floor(xy.amin(dim=1) - 1.0)
    hi = torch.ceil(xy.amax(dim=1) + 1.0) + 1.0
    lo = torch.maximum(lo, torch.zeros(2, dtype=torch.float64))
    hi = torch.minimum(hi, torch.tensor([w, h], dtype=torch.float64))
    hi = torch.maximum(hi, lo + 1.0)  # a map that points entirely outside the frame still reads its border
    lo = torch.minimum(lo, hi - 1.0)
    return torch.cat([lo, hi], dim=1).long()


def warp_clips(clips: torch.Tensor, homographies: torch.Tensor, out_size: int = 112,
               per_clip: bool | None = None) -> torch.Tensor:
    """Resample every frame of each clip through its clip's homography (bilinear, border-replicated edge).

    Args:
        clips: uint8 (B, T, H, W, 3) as stored, or float (B, C, T, H, W).
        homographies: (B, 3, 3) output -> source maps, preferably on the CPU (a GPU tensor costs a host sync).
        out_size: output side.
        per_clip: how to run it (same result). True: clip by clip, casting only the source rectangle each clip
            reads (`source_boxes`), fastest on a CPU. False: the whole batch in a few kernels, fastest on a GPU
            where per-clip calls would cost launches. None: True on the CPU, False elsewhere.
    Returns: (B, C, T, out_size, out_size), float32 for uint8 input (values 0..255), else the input's dtype.
    """
    return _warp(clips, homographies, out_size, normalise=False, per_clip=per_clip)


def _warp(clips: torch.Tensor, homographies: torch.Tensor, out_size: int, normalise: bool,
          per_clip: bool | None = None) -> torch.Tensor:
    if clips.dtype == torch.uint8:
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"uint8 clips must be (B, T, H, W, 3), got {tuple(clips.shape)}")
        b, t, h, w, c = clips.shape
        work = out_dtype = torch.float32
        frames_first = clips.permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W), channels-last strides
    elif clips.is_floating_point():
        if clips.ndim != 5:
            raise ValueError(f"float clips must be (B, C, T, H, W), got {tuple(clips.shape)}")
        b, c, t, h, w = clips.shape
        out_dtype = clips.dtype
        # Half-precision grids would misplace samples by up to half a pixel.
        work = torch.float32 if clips.dtype in (torch.float16, torch.bfloat16) else clips.dtype
        frames_first = clips.transpose(1, 2)  # (B, T, C, H, W)
    else:
        raise ValueError(f"clips must be uint8 (B,T,H,W,3) or floating (B,C,T,H,W), got {clips.dtype}")
    if tuple(homographies.shape) != (b, 3, 3):
        raise ValueError(f"homographies must be ({b}, 3, 3), got {tuple(homographies.shape)}")
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    if normalise and c != 3:
        raise ValueError(f"normalisation needs 3 channels, got {c}")
    dev = clips.device
    per_clip = dev.type == "cpu" if per_clip is None else per_clip
    homographies = homographies.detach().cpu().double()
    if per_clip:
        boxes = source_boxes(homographies, out_size, (h, w))
    else:
        boxes = torch.tensor([[0, 0, w, h]], dtype=torch.int64).expand(b, 4)
    # Fold grid_sample's [-1, 1] normalisation over the rectangle each clip reads into its homography (an affine
    # map after the perspective division, so it composes exactly).
    size = (boxes[:, 2:] - boxes[:, :2]).double()
    to_grid = torch.zeros(b, 3, 3, dtype=torch.float64)
    to_grid[:, 0, 0], to_grid[:, 1, 1], to_grid[:, 2, 2] = 2.0 / size[:, 0], 2.0 / size[:, 1], 1.0
    to_grid[:, :2, 2] = -1.0 - 2.0 * boxes[:, :2].double() / size
    grid = sampling_coords(to_grid @ homographies, out_size, device=dev, dtype=work)  # (B, out, out, 2)
    if normalise:
        gain, bias = (v.view(1, 3, 1, 1) for v in _norm_constants(dev, work))
    if not per_clip:
        # Frames are the batch of one grid_sample call; the frames of a clip share its grid.
        frames = frames_first.reshape(b * t, c, h, w).to(work)
        grids = grid.unsqueeze(1).expand(b, t, out_size, out_size, 2).reshape(b * t, out_size, out_size, 2)
        sampled = F.grid_sample(frames, grids, mode="bilinear", padding_mode="border", align_corners=False)
        if normalise:
            sampled.mul_(gain).add_(bias)
        return sampled.reshape(b, t, c, out_size, out_size).transpose(1, 2).contiguous().to(out_dtype)
    out = torch.empty(b, c, t, out_size, out_size, dtype=out_dtype, device=dev)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        # The clip's frames are the batch of one grid_sample call and share its grid. A uint8 clip is cast in
        # its stored (T, H, W, 3) order, a sequential pass over only the rectangle it reads.
        if clips.dtype == torch.uint8:
            region = torch.empty(t, y1 - y0, x1 - x0, c, dtype=work, device=dev)
            region = region.copy_(clips[i, :, y0:y1, x0:x1]).permute(0, 3, 1, 2)
        else:
            region = frames_first[i, :, :, y0:y1, x0:x1].to(work)
        sampled = F.grid_sample(region, grid[i:i + 1].expand(t, -1, -1, -1), mode="bilinear",
                                padding_mode="border", align_corners=False)
        if normalise:  # in place on the fresh (cache-warm) result, before the one write to the output
            sampled.mul_(gain).add_(bias)
        out[i].copy_(sampled.transpose(0, 1))
    return out


def normalize(clips: torch.Tensor) -> torch.Tensor:
    """Map 0..255 RGB to zero-mean unit-variance with the Kinetics statistics (`MEAN`, `STD`).

    Args:
        clips: float (B, 3, T, H, W), values 0..255.
    Returns: a new tensor of the same shape and dtype.
    """
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise ValueError(f"clips must be (B, 3, T, H, W), got {tuple(clips.shape)}")
    gain, bias = (v.view(1, 3, 1, 1, 1) for v in _norm_constants(clips.device, clips.dtype))
    return clips * gain + bias


def add_pixel_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Fresh Gaussian pixel noise on normalised clips, each at its own level and from its own seed.

    Added to pretext clips after the V3S warp, it masks what the warp did to the source's own pixel noise: the
    anisotropic texture that resampling leaves in it tells the spatial class without looking at any shape
    (docs/demo.md).

    Args:
        x: normalised float clips (B, 3, T, H, W) on any device.
        noise: float64 (B, 2): (sigma in grey levels 0..255, seed) per clip, as the items draw them; a single (2,)
            with sigma 0 (ClipItem's default, in a batch built by hand) adds none.
    Returns: x itself when every sigma is 0, else a new tensor like x. The same (sigma, seed) gives the same noise
        on the same device.
    """
    noise = noise.reshape(-1, 2)
    sigma, seeds = noise[:, 0].tolist(), noise[:, 1].long().tolist()
    if not any(s > 0 for s in sigma):
        return x
    gain, _ = _norm_constants(x.device, x.dtype)   # grey levels -> normalised units, per channel
    out = x.clone()
    for j, (s, seed) in enumerate(zip(sigma, seeds)):
        if s > 0:
            g = torch.Generator(device=x.device).manual_seed(seed)
            z = torch.randn(x.shape[1:], generator=g, device=x.device, dtype=torch.float32)
            out[j] += (z * s).to(x.dtype) * gain.view(3, 1, 1, 1)
    return out


def network_input(clips: torch.Tensor, homographies: torch.Tensor, out_size: int = 112,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """What every network sees: each clip resampled through its homography, then normalised (one pass), plus the
    pixel noise its item drew (pretext training only).

    Training, validation and evaluation all come through here, with the homographies their clips' items carry.

    Args:
        clips: uint8 (B, T, H, W, 3) on any device.
        homographies: (B, 3, 3) output -> source maps (CPU float64: `pretext_geometry`, `train_geometry`,
            `center_crop_params`).
        out_size: output side.
        noise: optional float64 (B, 2) (sigma, seed) per clip (`add_pixel_noise`).
    Returns: float32 (B, 3, T, out_size, out_size) on the clips' device.
    """
    x = _warp(clips, homographies, out_size, normalise=True)
    return x if noise is None else add_pixel_noise(x, noise)


def pretext_batch(clips: torch.Tensor, spatial_labels: torch.Tensor, label_space: LabelSpace,
                  generator: torch.Generator | None, out_size: int = 112, canvas: int = CANVAS,
                  crop: int = CROP) -> torch.Tensor:
    """V3S pretraining input: draw crops, warp every clip through its spatial class, normalise.

    Args:
        clips: uint8 (B, T, H, W, 3) on any device.
        spatial_labels: (B,) long.
        label_space: gives the spatial classes.
        generator: CPU torch.Generator for the crop positions.
        canvas, crop: the square canvas frames are resized to and the crop taken from it (paper: 224, 112).
    Returns: float32 (B, 3, T, out_size, out_size) on the clips' device.
    """
    h = sample_spatial_params(spatial_labels, label_space, generator, tuple(clips.shape[2:4]), out_size, canvas, crop)
    return network_input(clips, h, out_size)


def finetune_batch(clips: torch.Tensor, generator: torch.Generator | None, out_size: int = 112,
                   flip: bool = True) -> torch.Tensor:
    """Finetuning input: random crop + horizontal flip (unless flip is False) + normalise.

    Args:
        clips: uint8 (B, T, H, W, 3) on any device.
        generator: CPU torch.Generator for crops and flips.
    Returns: float32 (B, 3, T, out_size, out_size) on the clips' device.
    """
    h = train_geometry_params(clips.shape[0], tuple(clips.shape[2:4]), out_size, generator, flip)
    return network_input(clips, h, out_size)


def eval_batch(clips: torch.Tensor, out_size: int = 112) -> torch.Tensor:
    """Test input: centre crop + normalise.

    Args:
        clips: uint8 (B, T, H, W, 3) on any device.
    Returns: float32 (B, 3, T, out_size, out_size) on the clips' device.
    """
    h = center_crop_params(clips.shape[0], tuple(clips.shape[2:4]), out_size)
    return network_input(clips, h, out_size)


def reference_pretext_frame(frame: np.ndarray, cls: SpatialClass, box: tuple[int, int, int], out_size: int = 112,
                            canvas: int = CANVAS) -> np.ndarray:
    """The paper's three-step pipeline on one frame with OpenCV, for tests and the benchmark baseline.

    resize to canvas x canvas -> warpPerspective -> crop the box -> resize to out_size (each step interpolates).
    OpenCV puts pixel centres at integers, so the paper's corner homography is shifted by half a pixel.

    Args:
        frame: uint8 (H, W, 3).
        cls: the spatial class.
        box: integer crop square (x0, y0, side) in transformed-canvas pixels.
    Returns: uint8 (out_size, out_size, 3).
    """
    import cv2

    x0, y0, side = (int(v) for v in box)
    resized = cv2.resize(frame, (canvas, canvas), interpolation=cv2.INTER_LINEAR)
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m = np.linalg.inv(half) @ class_homographies([cls], canvas)[0].numpy() @ half
    warped = cv2.warpPerspective(resized, m, (x0 + side, y0 + side), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    crop = warped[y0:y0 + side, x0:x0 + side]
    return crop if side == out_size else cv2.resize(crop, (out_size, out_size), interpolation=cv2.INTER_LINEAR)

"""V3S spatial pretext transform: fused one-pass warp vs the paper's per-frame OpenCV pipeline, per core.

Usage:  python bench/bench_transforms.py [--batch 32] [--frames 16] [--repeats 7] [--threads 1]
        python bench/bench_transforms.py --render docs/img --video ../shared/reference/videos/v_Basketball_g01_c01.avi
                                                   (only the two figures of docs/transforms.md)

Both paths turn a batch of uint8 clips (B, T, 128, 171, 3) with random V3S spatial labels into the normalised
float32 input (B, 3, T, 112, 112). Baseline: for every frame, cv2.resize to 224x224, cv2.warpPerspective,
crop, cv2.resize to 112 (projection classes), then one layout change + cast + normalisation in torch; its
homographies are computed once per clip, outside the loop. "opencv" warps the whole transformed frame as the
paper describes; "opencv-tuned" warps only up to the crop's far corner. "fused-batch" is the fused warp's
whole-batch path (the GPU default) run on the CPU, then a separate normalisation. Fused: `v3s.shared.spatial.pretext_batch`. The two
are timed alternately, torch and OpenCV both on --threads threads. The ratio uses process CPU time (median
of --repeats), which other jobs on a shared machine disturb far less than wall time; wall time is printed too.
On a GPU, the warp's share of a real training step is measured by bench/gpu_train.py.
"""
from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import time

import cv2
import numpy as np
import torch

from v3s.shared import spatial as S
from v3s.shared.labels import LabelSpace


def opencv_pipeline(clips: np.ndarray, labels: list[int], boxes: list[list[int]], matrices: list[np.ndarray],
                    sizes: list[tuple[int, int]] | None, out_size: int = 112) -> torch.Tensor:
    """The paper's three steps per frame with OpenCV, then normalise.

    Args:
        clips: uint8 (B, T, H, W, 3).
        sizes: per class, the (width, height) of the whole transformed frame to warp (the literal pipeline);
            None warps only up to the crop's far corner (a tuned loop).
    """
    b, t = clips.shape[:2]
    frames = np.empty((b, t, out_size, out_size, 3), np.uint8)
    for i in range(b):
        x0, y0, side = boxes[i]
        m = matrices[labels[i]]
        dsize = sizes[labels[i]] if sizes else (x0 + side, y0 + side)
        for j in range(t):
            r = cv2.resize(clips[i, j], (S.CANVAS, S.CANVAS), interpolation=cv2.INTER_LINEAR)
            w = cv2.warpPerspective(r, m, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            c = w[y0:y0 + side, x0:x0 + side]
            frames[i, j] = c if side == out_size else cv2.resize(c, (out_size, out_size),
                                                                   interpolation=cv2.INTER_LINEAR)
    out = torch.empty(b, 3, t, out_size, out_size)
    out.copy_(torch.from_numpy(frames).permute(0, 4, 1, 2, 3))
    std = torch.tensor(S.STD).view(1, 3, 1, 1, 1)
    return out.mul_(1.0 / (255.0 * std)).sub_(torch.tensor(S.MEAN).view(1, 3, 1, 1, 1) / std)


def cpu_ratio(batch: int, frames: int, repeats: int) -> None:
    ls = LabelSpace()
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (batch, frames, 128, 171, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, ls.n_spatial, (batch,), generator=g)
    boxes = S.crop_boxes(labels, ls, torch.rand(batch, 2, generator=g, dtype=torch.float64)).round().long().tolist()
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    matrices = [np.linalg.inv(half) @ m.numpy() @ half for m in S.class_homographies(list(ls.spatial_classes))]
    whole = [(math.ceil(c.a * S.CANVAS), math.ceil(c.b * S.CANVAS)) for c in ls.spatial_classes]
    np_clips, lab = clips.numpy(), labels.tolist()
    runs = {"fused": lambda: S.pretext_batch(clips, labels, ls, g),
            "fused-batch": lambda: S.normalize(S.warp_clips(clips, S.sample_spatial_params(labels, ls, g, (128, 171)),
                                                            per_clip=False)),
            "opencv": lambda: opencv_pipeline(np_clips, lab, boxes, matrices, whole),
            "opencv-tuned": lambda: opencv_pipeline(np_clips, lab, boxes, matrices, None)}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    wall: dict[str, list[float]] = {k: [] for k in runs}
    for k, f in runs.items():  # warm-up
        f()
    for _ in range(repeats):
        for k, f in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    for k in runs:
        print(f"{k:>12}: {med[k] * 1e3:7.1f} ms CPU/batch  {batch / med[k]:7.1f} clips/s per core  "
              f"(CPU min {min(cpu[k]) * 1e3:.1f} max {max(cpu[k]) * 1e3:.1f}; wall median "
              f"{statistics.median(wall[k]) * 1e3:.1f})")
    for k in ("opencv", "opencv-tuned"):
        print(f"  ratio {k} / fused = {med[k] / med['fused']:.2f}x (CPU time per batch)")


def decode(video: str, height: int = 128, width: int = 171) -> np.ndarray:
    """All frames of a video, resized like the store, as uint8 (N, H, W, 3)."""
    from v3s.shared.video import ffmpeg_exe

    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", video, "-vf", f"scale={width}:{height}", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def render(out_dir: str, video: str) -> None:
    """Draw every spatial class of one frame and the frame indices of every temporal class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v3s.shared.temporal import temporal_indices

    frames = decode(video)
    ls = LabelSpace()
    frame = frames[len(frames) // 2]
    labels = torch.arange(ls.n_spatial)
    boxes = S.crop_boxes(labels, ls, torch.full((ls.n_spatial, 2), 0.5, dtype=torch.float64))
    hom = S.pretext_homographies(labels, ls, boxes, frame.shape[:2], 112)
    clip = torch.from_numpy(frame.copy())[None, None].expand(ls.n_spatial, 1, *frame.shape)
    outs = S.warp_clips(clip, hom, 112)[:, :, 0].permute(0, 2, 3, 1).round().clamp(0, 255).byte().numpy()
    fig, axes = plt.subplots(4, 5, figsize=(12.5, 10.8))
    ax = axes.flat[0]
    ax.imshow(frame)
    edge = np.array([[0.5, 0.5], [0.5, 111.5], [111.5, 111.5], [111.5, 0.5], [0.5, 0.5]])
    for lab, colour in ((0, "yellow"), (6, "cyan"), (ls.spatial_label(ls.spatial_classes[-1]), "magenta"),
                        (10, "lime")):
        m = hom[lab].numpy()
        q = np.c_[edge, np.ones(5)] @ m.T
        ax.plot(q[:, 0] / q[:, 2], q[:, 1] / q[:, 2], color=colour, lw=1.5, label=ls.spatial_classes[lab].name)
    ax.legend(fontsize=6, loc="lower left")
    ax.set_title(f"source {frame.shape[1]}x{frame.shape[0]}: regions read", fontsize=9)
    for ax, img, c in zip(axes.flat[1:], outs, ls.spatial_classes):
        ax.imshow(img)
        ax.set_title(f"{ls.spatial_label(c)}: {c.name}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("V3S spatial classes (default label space), 112x112 outputs, crops centred", fontsize=11)
    fig.tight_layout()
    fig.savefig(f"{out_dir}/transforms_spatial.png", dpi=80)
    plt.close(fig)

    start = 0
    h, w = frames.shape[1:3]  # thumbnails of the frame's centre square, where the action usually is
    thumbs = [cv2.resize(f[:, (w - h) // 2:(w + h) // 2], (46, 46), interpolation=cv2.INTER_AREA) for f in frames]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 13), gridspec_kw={"height_ratios": [1, 1.6]})
    strips = []
    for lab, c in enumerate(ls.temporal_classes):
        idx = temporal_indices(len(frames), c, start)
        top.plot(range(16), idx, marker="o" if c.kind == "speed" else ".", ms=4, color=plt.cm.tab20(lab),
                 ls="-" if c.kind == "speed" else "--", label=f"{lab}: {c.name}")
        tiles = []
        for k in idx:
            tile = thumbs[k].copy()
            cv2.putText(tile, str(int(k)), (1, 9), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 0), 1)
            tiles.append(np.pad(tile, ((1, 1), (1, 1), (0, 0))))
        strips.append(np.concatenate(tiles, axis=1))
    top.set_xlabel("position in the 16-frame clip")
    top.set_ylabel("source frame index")
    top.legend(fontsize=7, ncol=2)
    top.grid(alpha=0.3)
    bottom.imshow(np.concatenate(strips, axis=0))
    bottom.set_yticks([48 * i + 24 for i in range(ls.n_temporal)], [c.name for c in ls.temporal_classes])
    bottom.set_xticks([])
    fig.suptitle(f"V3S temporal classes from start {start} (frame index printed on each frame)", fontsize=11)
    fig.tight_layout()
    fig.savefig(f"{out_dir}/transforms_temporal.png", dpi=80)
    plt.close(fig)
    print(f"wrote {out_dir}/transforms_spatial.png and {out_dir}/transforms_temporal.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--render", metavar="DIR", help="write the docs figures to DIR instead of benchmarking")
    p.add_argument("--video", default="../shared/reference/videos/v_Basketball_g01_c01.avi")
    a = p.parse_args()
    if a.render:
        render(a.render, a.video)
        return
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    print(f"batch {a.batch} x {a.frames} x 128x171 uint8 -> {a.frames}x112x112 float32, {a.threads} thread(s), "
          f"torch {torch.__version__}, OpenCV {cv2.__version__}")
    cpu_ratio(a.batch, a.frames, a.repeats)


if __name__ == "__main__":
    main()

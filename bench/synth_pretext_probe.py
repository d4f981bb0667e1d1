"""Is the temporal pretext learnable on the synthetic set at small resolution? A tiny 3D CNN, a few minutes of CPU.

Trains one small network to tell a clip's sampling step (1, 2 or 3: V3S's temporal-scale classes) and the same
network on the motion class, both on split-1 train videos and scored on split-1 test videos (unseen groups),
16 frames at 64x64 (resized from 128x172, centre crop). The baseline in the same run is a logistic regression on
five global frame-difference statistics of the clip, for the step task:

    .venv/bin/v3s-prep synth /tmp/synth_default
    .venv/bin/python bench/synth_pretext_probe.py /tmp/synth_default [STEPS] [step,step-diff,class,class-diff]

A task ending in `-diff` feeds the network frame differences instead of frames (learning rate 3e-4, not 1e-3).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from v3s.data_manifest import load_manifest
from v3s.preprocess.synth import read_video_rgb

T, SIDE = 16, 64


def _load(root: Path, entries) -> list[np.ndarray]:
    out = []
    for e in entries:
        frames = read_video_rgb(root / e.rel_path)
        w = round(frames.shape[2] * SIDE / frames.shape[1])
        x0 = (w - SIDE) // 2
        out.append(np.stack([cv2.resize(f, (w, SIDE), interpolation=cv2.INTER_AREA)[:, x0:x0 + SIDE]
                             for f in frames]))
    return out


def _batch(videos, labels, rng, n: int, task: str, diff: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    clips, ys = [], []
    for _ in range(n):
        i = int(rng.integers(len(videos)))
        step = int(rng.integers(1, 4)) if task == "step" else 1
        v = videos[i]
        t0 = int(rng.integers(0, len(v) - step * (T - 1)))
        clips.append(v[t0:t0 + step * T:step])
        ys.append(step - 1 if task == "step" else labels[i])
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)
    if diff:   # frame differences (T-1 frames), scaled to about unit range
        x = (x[:, :, 1:] - x[:, :, :-1]) * 4
    return x, torch.tensor(ys)


def _net(n_out: int) -> nn.Module:
    def block(cin: int, cout: int, stride: tuple[int, int, int]) -> nn.Sequential:
        return nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU())
    return nn.Sequential(block(3, 16, (1, 2, 2)), block(16, 32, (2, 2, 2)), block(32, 64, (2, 2, 2)),
                         block(64, 64, (2, 2, 2)), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(64, n_out))


def _run(task: str, train, ytr, test, yte, n_out: int, steps: int) -> tuple[float, float]:
    diff = task.endswith("-diff")
    task = task.removesuffix("-diff")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = _net(n_out)
    opt = torch.optim.Adam(net.parameters(), 3e-4 if diff else 1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = _batch(train, ytr, rng, 16, task, diff)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    right = total = 0
    with torch.no_grad():
        for _ in range(20):
            x, y = _batch(test, yte, rng, 32, task, diff)
            right += int((net(x).argmax(1) == y).sum())
            total += len(y)
    return right / total, time.perf_counter() - start


def _frame_difference_baseline(train, test) -> float:
    """Held-out accuracy of a logistic regression on global frame-difference statistics of a clip (step task)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)

    def features(videos, n: int):
        xs, ys = [], []
        for _ in range(n):
            v = videos[int(rng.integers(len(videos)))]
            step = int(rng.integers(1, 4))
            t0 = int(rng.integers(0, len(v) - step * (T - 1)))
            clip = v[t0:t0 + step * T:step].astype(np.float32).mean(-1)
            d = np.abs(np.diff(clip, axis=0))
            xs.append(np.log([d.mean(), np.percentile(d, 90), np.percentile(d, 99), (d > 20).mean() + 1e-3,
                              clip.std()]))
            ys.append(step)
        return np.array(xs), np.array(ys)

    (xtr, ytr), (xte, yte) = features(train, 1500), features(test, 600)
    return float((LogisticRegression(max_iter=5000).fit(xtr, ytr).predict(xte) == yte).mean())


def main(root: str, steps: int = 400, tasks: str = "step,step-diff,class") -> None:
    torch.set_num_threads(2)
    m = load_manifest(root, "ucf101")
    tr, te = m.select("1", "train"), m.select("1", "test")
    train, test = _load(Path(root), tr), _load(Path(root), te)
    ytr, yte = [e.label for e in tr], [e.label for e in te]
    print(f"step from 5 global frame-difference statistics (logistic regression): held-out accuracy "
          f"{_frame_difference_baseline(train, test):.3f} (chance 0.333)")
    for task, n_out in (("step", 3), ("step-diff", 3), ("class", len(m.classes)), ("class-diff", len(m.classes))):
        if task not in tasks.split(","):
            continue
        acc, took = _run(task, train, ytr, test, yte, n_out, steps)
        print(f"{task}: held-out accuracy {acc:.3f} (chance {1 / n_out:.3f}) after {steps} steps of 16 clips, "
              f"{took:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) if a.isdigit() else a for a in sys.argv[2:]))

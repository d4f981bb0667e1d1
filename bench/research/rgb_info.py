"""Is the V3S temporal label in what an RGB network's first layers see? Linear probes on fixed features of pretext
clips, trained on split 1's train videos and scored on its test videos (groups never seen).

    OMP_NUM_THREADS=1 .venv/bin/python bench/research/rgb_info.py STORE [PRESET] [N_TRAIN] [CANVAS]
        # e.g. DATA/store ts 1200 224

Features per clip: (a) hand-made: mean, spread and percentiles of |frame differences| (the amount of motion);
(b) a random-init width-0.25 R(2+1)D's stage outputs (conv1 = the stem, conv2, conv3), per-channel mean and
standard deviation over (T, H, W), with RGB input, with frame-difference input, and with RGB input and zero-sum
temporal kernels (lab.zero_mean_temporal) in the stem or in every layer. Prints one line per probe.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

import lab
from v3s.shared.labels import LabelSpace
from v3s.shared.models import build_backbone


def clips_of(mem, ls, role: str, n: int, canvas: int, seed: int):
    """n pretext clips (normalised float, (n, 3, T, 32, 32)) with their spatial and temporal labels."""
    spec = lab.PretrainSpec(canvas=canvas, crop=112, size=32, clip_len=16)   # the geometry (classes: ls)
    ds = lab.pretext_clips(mem, spec, ls, role, seed)
    xs, ss, ts = [], [], []
    for ep in range(int(np.ceil(n / len(ds)))):
        for b0 in range(0, len(ds), 50):
            batch = lab.collate(ds[(ep, i)] for i in range(b0, min(len(ds), b0 + 50)))
            xs.append(lab.batch_input(batch, 32))
            ss.append(batch.targets[:, 0])
            ts.append(batch.targets[:, 1])
    return torch.cat(xs)[:n], torch.cat(ss)[:n].numpy(), torch.cat(ts)[:n].numpy()


def motion_stats(x: torch.Tensor) -> np.ndarray:
    d = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(1).flatten(1)
    q = torch.quantile(d, torch.tensor([0.5, 0.9, 0.99]), dim=1).T
    return torch.cat([d.mean(1, keepdim=True), d.std(1, keepdim=True), q], 1).numpy()


@torch.no_grad()
def stage_stats(x: torch.Tensor, mode: str, upto: str) -> np.ndarray:
    torch.manual_seed(0)
    bb = build_backbone("r21d", 0.25, "diff" if mode == "diff" else "rgb").eval()
    if mode.startswith("rgb-zero-"):
        lab.zero_mean_temporal(bb, mode[len("rgb-zero-"):])
    if mode == "diff":
        x = x[:, :, 1:] - x[:, :, :-1]
    feats = []
    for b0 in range(0, len(x), 100):
        h = x[b0:b0 + 100]
        for name, stage in bb.stages.items():
            h = stage(h)
            if name == upto:
                break
        feats.append(torch.cat([h.mean((2, 3, 4)), h.flatten(2).std(2)], 1))
    return torch.cat(feats).numpy()


def probe(fa, ya, fb, yb) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    best = 0.0
    for c in (0.01, 0.1, 1, 10):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(fa, ya)
        best = max(best, clf.score(fb, yb))
    return best


def main() -> None:
    store = sys.argv[1]
    preset = sys.argv[2] if len(sys.argv) > 2 else "ts"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    canvas = int(sys.argv[4]) if len(sys.argv) > 4 else 224
    torch.set_num_threads(1)
    mem = lab.MemStore(store)
    ls = LabelSpace.preset(preset)
    xa, sa, ta = clips_of(mem, ls, "train", n, canvas, 0)
    xb, sb, tb = clips_of(mem, ls, "test", n // 2, canvas, 1)
    print(f"preset {preset}, canvas {canvas}: {len(ta)} train / {len(tb)} test clips; chance spatial "
          f"{1 / ls.n_spatial:.3f} temporal {1 / ls.n_temporal:.3f} (best C on the test clips: an upper bound)")
    rows = [("motion statistics (5 numbers)", motion_stats(xa), motion_stats(xb))]
    for mode in ("rgb", "diff", "rgb-zero-stem", "rgb-zero-all"):
        for upto in ("conv1", "conv2", "conv3"):
            rows.append((f"random R(2+1)D {mode} {upto} mean+std", stage_stats(xa, mode, upto), stage_stats(xb, mode, upto)))
    for name, fa, fb in rows:
        line = f"{name:40s} temporal {probe(fa, ta, fb, tb):.3f}"
        if ls.n_spatial > 1:
            line += f" spatial {probe(fa, sa, fb, sb):.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()

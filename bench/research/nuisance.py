"""What do the top principal directions of frozen features encode: the class, or nuisances of the clip?

    OMP_NUM_THREADS=1 .venv/bin/python bench/research/nuisance.py STORE SYNTH_ROOT RUN_DIR [TAP ...]
        # e.g. DATA/store DATA/kinds DATA/runs/r0_bn_eval pool pool3

Reads RUN_DIR/feats_{v3s,random}.npz (written by run.py) and the synthetic set's ground truth (the plan of SYNTH_ROOT's
.synth_config.json, each clip's scene redrawn from its seeds). For each arm and tap: the share of variance of the top
5 principal components of the train videos, and for each PC the R^2 that the class (one-hot) and each nuisance explain
(linear, in-sample): object size, speed in pixels per frame, mean frame brightness, motion energy (mean |frame
difference| at step 2), video length, the main object's shape, its mean direction of motion (dir_x, dir_y: mean
cosine and sine of the velocity's angle) and axis (axis_c, axis_s: of twice the angle), mean position, number of
distractors, noise level, camera-jitter amplitude, background texture (mean spatial gradient of the median
frame), colour saturation, and the group (one-hot over ~120 groups: in-sample R^2 about 0.2 by chance alone). Then cross-validated R^2 of each nuisance from the whole
feature (ridge).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import lab
from v3s.preprocess.synth import SHAPES, SynthConfig, plan_dataset, sample_scene, trajectory


def ground_truth(mem, root: str, role: str) -> dict[str, np.ndarray]:
    # a field the file leaves out (clutter, in a folder made before it existed) takes its default
    cfg = SynthConfig.from_dict(json.loads((Path(root) / ".synth_config.json").read_text()))
    plan = {v.rel_path: v for v in plan_dataset(cfg)}
    rows = []
    for v in mem.videos(lab.DS, "1", role):
        scene = sample_scene(plan[v.rel_path].spec)
        frames = mem.frames[v.key].astype(np.float32)
        track = trajectory(scene)
        vel = np.diff(track.center, axis=0)[np.diff(track.track_id) == 0]
        ang = np.arctan2(vel[:, 1], vel[:, 0])
        rows.append(dict(size=scene.base_size, speed=scene.speed, brightness=frames.mean(),
                         motion=np.abs(frames[2:] - frames[:-2]).mean(), length=scene.n_frames,
                         shape=SHAPES.index(scene.sprite.shape), dir_x=np.cos(ang).mean(), dir_y=np.sin(ang).mean(),
                         axis_c=np.cos(2 * ang).mean(), axis_s=np.sin(2 * ang).mean(),
                         pos_x=track.center[:, 0].mean(), pos_y=track.center[:, 1].mean(),
                         distractors=len(scene.distractors), noise=scene.noise_sigma,
                         jitter=float(scene.jitter[..., 0].sum()), texture=_texture(frames),
                         saturation=float((frames.max(-1) - frames.min(-1)).mean()), group=0))
    out = {k: np.array([r[k] for r in rows], np.float64) for k in rows[0]}
    out["group"] = lab.group_ids(mem.videos(lab.DS, "1", role)).astype(np.float64)
    return out


def _texture(frames: np.ndarray) -> float:
    """Mean absolute spatial gradient of the video's median frame (mostly the static background)."""
    med = np.median(frames, axis=0).mean(-1)
    return float(np.abs(np.diff(med, axis=0)).mean() + np.abs(np.diff(med, axis=1)).mean())


def r2(y: np.ndarray, x: np.ndarray) -> float:
    """In-sample R^2 of a least-squares fit of y on x (with intercept)."""
    x = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(1 - ((y - x @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def onehot(v: np.ndarray) -> np.ndarray:
    return (v[:, None] == np.unique(v)[None, 1:]).astype(np.float64)


def main() -> None:
    store, root, run = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    taps = sys.argv[4:] or ["pool"]
    mem = lab.MemStore(store)
    gt = ground_truth(mem, root, "train")
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    for arm in ("v3s", "random"):
        z = np.load(run / f"feats_{arm}.npz")
        y, groups = z["train_labels"], z["train_groups"]
        for tap in taps:
            f = z[f"train_{tap}"]
            c = f - f.mean(0)
            u, s, _ = np.linalg.svd(c, full_matrices=False)
            share = s ** 2 / (s ** 2).sum()
            print(f"\n{arm} {tap}: top-5 PC variance shares {np.round(share[:5], 3).tolist()}")
            print("  PC  class  " + "  ".join(f"{k[:7]:>7s}" for k in gt))
            for i in range(5):
                pc = u[:, i] * s[i]
                vals = [r2(pc, onehot(y))] + [r2(pc, onehot(gt[k]) if k in ("shape", "group") else gt[k]) for k in gt]
                print(f"  {i + 1:2d}  " + "  ".join(f"{v:5.2f}" if j == 0 else f"{v:7.2f}" for j, v in enumerate(vals)))
            cv = {k: float(cross_val_score(make_pipeline(StandardScaler(), RidgeCV(np.logspace(-2, 4, 13))), f,
                                           gt[k], groups=groups, cv=GroupKFold(5), scoring="r2").mean())
                  for k in gt if k not in ("shape", "group") and np.ptp(gt[k]) > 0}   # (clean sets: no noise)
            print("  cross-validated R^2 from the whole feature: " + ", ".join(f"{k} {v:.2f}" for k, v in cv.items()))


if __name__ == "__main__":
    main()

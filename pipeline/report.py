"""REPORT.md of the main job: the one table, then the checks with their numbers, each verdict computed."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def format_report(r: dict[str, Any]) -> str:
    """REPORT.md: the one table, the representation monitor and the speediness curve, then the checks of the gain,
    each with its number."""
    cfg, pre = r["config"], r["pretext"]
    seeds = [str(s) for s in cfg["seeds"]]
    top1 = r["finetune_top1"]
    mean = {arm: float(np.mean([top1[arm][s] for s in seeds])) for arm in top1}
    ks = [k for k in r["retrieval"]["v3s"]]
    lines = [
        "# V3S on the embedded synthetic set: report",
        "",
        f"Synthetic set: {cfg['classes']} classes ({cfg['class_set']}) x {cfg['videos_per_class']} videos. "
        f"R(2+1)D ({cfg['backbone']}, width {cfg['width']}, input {cfg['input_mode']}), clips {cfg['clip_len']}x{cfg['clip_size']}x{cfg['clip_size']} "
        f"from a {cfg['store_size'][0]}x{cfg['store_size'][1]} store; pretraining {pre['step']} steps of batch {cfg['pretrain_batch']} on split 1's "
        f"train list ({cfg['transforms']}: {pre['n_spatial']} spatial x {pre['n_temporal']} temporal classes, canvas {cfg['canvas']}); "
        f"finetuning {cfg['finetune_steps']} steps on {cfg['train_per_class']} labelled videos per class, clips of "
        f"{cfg['clip_len']} frames at frame step {cfg['frame_step']}, same settings for both arms, seeds {', '.join(seeds)}.",
        "",
        "| measure | V3S | random init |",
        "|---|---|---|",
        f"| pretext accuracy, spatial head (held-out videos; chance {_pct(1 / pre['n_spatial'])}) | "
        f"{_pct(pre['val'].get('acc_spatial'))} | |",
        f"| pretext accuracy, temporal head (held-out videos; chance {_pct(1 / pre['n_temporal'])}) | "
        f"{_pct(pre['val'].get('acc_temporal'))} | |",
    ]
    for s in seeds:
        lines.append(f"| finetune top-1, seed {s} (video, 10 clips) | {_pct(top1['v3s'][s])} | {_pct(top1['random'][s])} |")
    lines.append(f"| **finetune top-1, mean of {len(seeds)} seeds** | **{_pct(mean['v3s'])}** | **{_pct(mean['random'])}** |")
    for k in ks:
        lines.append(f"| retrieval top-{k} (pool features) | {_pct(r['retrieval']['v3s'][k])} | {_pct(r['retrieval']['random'][k])} |")
    lines.append(f"| kNN top-1 (pool features, k = {r['knn_k']['v3s']} / {r['knn_k']['random']} chosen on the train "
                 f"list, T 0.07) | {_pct(r['knn_top1']['v3s'])} | {_pct(r['knn_top1']['random'])} |")
    lines.append(f"| linear probe top-1 (pool features, C by group cross-validation on the train list) | "
                 f"{_pct(r['linear_top1']['v3s'])} | {_pct(r['linear_top1']['random'])} |")
    a = r["aslan"]
    lines.append(f"| ASLAN-style accuracy +- s.e. (unseen motion classes) | {_pct(a['v3s']['accuracy'])} +- "
                 f"{_pct(a['v3s']['std_error'])} | {_pct(a['random']['accuracy'])} +- {_pct(a['random']['std_error'])} |")
    lines.append(f"| ASLAN-style AUC | {_pct(a['v3s']['auc'])} | {_pct(a['random']['auc'])} |")
    gain = 100 * r["finetune_gain_mean"]
    verdict = ("reached" if gain >= 10 else "NOT reached")
    lines += [
        "",
        f"Finetune gain of V3S over random init, mean over seeds: **{gain:+.1f} points** (goal: +10; {verdict}).",
        "",
        "## The representation during pretraining (kNN monitor) and a speediness curve",
        "",
        *_monitor_and_speed(r),
        "",
        "## Checks of the gain, in order",
        "",
        *_checks(r),
        "",
        "## Where things are",
        "",
        *[f"- {name}: `{_rel(path, cfg['out'])}`" for name, path in r["files"].items()],
        "",
        "## Time per step in this run (s; a rerun shows what was reused)",
        "",
        *[f"- {name}: {sec:.1f}" for name, sec in r["seconds"].items()],
        "",
    ]
    return "\n".join(lines)


def _monitor_and_speed(r: dict[str, Any]) -> list[str]:
    """The monitor's kNN top-1 along pretraining, and the speediness curve's summary."""
    monitor = r["monitor"]
    lines = ["Frozen-feature kNN top-1 (test videos against train videos, one centred clip each; labels only score "
             "the features) along pretraining: " + ", ".join(f"step {s} {_pct(v)}" for s, v in monitor) + "; the "
             "curve is in the pretraining run's curves.png." if monitor else "The monitor did not run."]
    s = r["speediness"]["summary"]
    lines.append(f"Speediness curve of test video {r['speediness']['video']} (plain clips, the temporal head's expected "
                 f"speed): mean {s['expected_speed']['mean']:.2f} (min {s['expected_speed']['min']:.2f}, max "
                 f"{s['expected_speed']['max']:.2f}), P(speed > 1) mean {s['p_faster']['mean']:.2f}; "
                 f"`{_rel(r['files']['speediness'], r['config']['out'])}`.")
    return lines


def _rel(path: str, out: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(out).resolve()))
    except ValueError:
        return str(path)


def _checks(r: dict[str, Any]) -> list[str]:
    """The six checks with their numbers; each verdict is computed from the numbers, never assumed."""
    cfg, pre, c = r["config"], r["pretext"], r["checks"]
    chance_s, chance_t = 1 / pre["n_spatial"], 1 / pre["n_temporal"]
    acc_s, acc_t = c["spatial_intact"], c["temporal_intact"]

    def above(acc: float, chance: float) -> str:
        return f"{acc / chance:.1f}x chance: " + ("well above chance" if acc >= 3 * chance else "NOT 3x above chance")

    motion = ("it reads motion: shuffling the frames costs it most of its accuracy"
              if acc_t >= 2 * chance_t and c["temporal_shuffled"] <= chance_t + 0.5 * (acc_t - chance_t)
              else "no evidence that it reads motion rather than single frames")
    spatial = ("it reads each frame's geometry: shuffling the frames in time leaves it "
               + ("its accuracy" if c["spatial_shuffled"] >= 0.8 * acc_s else "less than 80% of its accuracy")
               if acc_s >= 2 * chance_s else "it is near chance, so there is nothing for a shortcut to explain")
    loaded = c["feature_cosine_vs_random"]
    loss = {arm: float(np.mean(list(v.values()))) for arm, v in r["finetune_train_loss"].items()}
    return [
        f"1. Pretext heads on held-out videos ({c['n_videos']} validation videos never trained on): spatial "
        f"{_pct(acc_s)} % ({above(acc_s, chance_s)}), temporal {_pct(acc_t)} % ({above(acc_t, chance_t)}).",
        f"2. Shortcuts. Temporal head with the clip's frames shuffled in time: {_pct(c['temporal_shuffled'])} %, with "
        f"one frame repeated {cfg['clip_len']} times: {_pct(c['temporal_frozen'])} % (intact {_pct(acc_t)} %, chance "
        f"{_pct(chance_t)} %): {motion}. Spatial head on time-shuffled clips: {_pct(c['spatial_shuffled'])} % (intact "
        f"{_pct(acc_s)} %): {spatial}. No sampling coordinate of any spatial class leaves the source frame "
        "(tests/test_spatial.py), so there are no black warp borders to read.",
        f"3. Pretrained weights loaded: the V3S arm starts from the checkpoint's {c['backbone_tensors']} backbone tensors; "
        f"on the same clips its pooled features have mean cosine similarity {loaded:.3f} with a random init's "
        f"({'different features' if loaded < 0.95 else 'suspiciously close to random'}).",
        f"4. Labelled set: {cfg['train_per_class']} videos per class ({cfg['train_per_class'] * cfg['classes']} in all) "
        "for finetuning; pretraining saw the whole train list without labels.",
        f"5. Finetuning length: {cfg['finetune_steps']} steps of batch {cfg['finetune_batch']} for both arms "
        f"({cfg['finetune_steps'] * cfg['finetune_batch'] / (cfg['train_per_class'] * cfg['classes']):.0f} passes over "
        f"the labelled set); training loss at the end (mean of seeds): V3S {loss['v3s']:.2f}, random {loss['random']:.2f}"
        f"{' (the random arm has not converged: see docs/demo.md for 3x longer runs)' if loss['random'] > loss['v3s'] + 0.2 else ''}; "
        "the curves are in runs/finetune-*/curves.png.",
        f"6. Backbone learning rate: x{cfg['backbone_lr_mult']} of the head's for the V3S arm (random init: x1).",
    ]

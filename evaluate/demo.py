"""The main job on the embedded default dataset: synth -> extract -> V3S pretraining -> finetune (V3S vs random
init, several seeds) -> recognition, retrieval and ASLAN -> one table and REPORT.md.

Every step reuses what a previous run finished (the synthetic folders, the store, the checkpoints, the feature
cache), so a rerun takes seconds for what is done. See docs/demo.md for the recipe and why each setting is what it is.

    python -m v3s.evaluate.demo --out demo_out        (what `make demo` runs)
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import torch

from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.synth import SynthConfig, generate, write_contact_sheet
from v3s.shared.checkpoint import load_checkpoint
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.train.finetune import finetune
from v3s.train.logging import read_metrics
from v3s.train.pretrain import pretrain

from .run_aslan import AslanConfig, run_aslan
from .run_recognition import RecognitionConfig, run_recognition
from .run_retrieval import RetrievalConfig, run_retrieval
from .shortcuts import pretext_shortcut_checks


@dataclass(frozen=True)
class DemoConfig:
    """The CPU-sized preset of the whole pipeline (docs/demo.md explains each value).

    Attributes:
        out: output folder (data, store, runs, REPORT.md, PNGs).
        class_set, classes, videos_per_class: the synthetic set (UCF101 layout, 3 splits; split 1 is used):
            "kinds" = classes that differ by the kind of motion, direction drawn per clip (docs/synth.md).
        synth_size: (height, width) the synthetic videos are rendered at.
        aslan_classes, aslan_videos_per_class, aslan_pairs_per_fold: the ASLAN-style set of unseen motion classes.
        store_size: (height, width) of the stored frames: the paper's 128x171 scaled by 0.28, so that the 32 crop
            shows the share of the frame the paper's 112 crop does.
        backbone, width: the network (R(2+1)D as in the paper's ablations, width-reduced for 2 CPU cores).
        input_mode: "diff" feeds differences of consecutive frames (TSN's RGB-difference modality) to both arms:
            at this size an RGB-input network never left chance on the pretext (docs/demo.md).
        clip_len, clip_size: frames per clip and the side of the network's input.
        frame_step: finetuning and evaluation clips take every frame_step-th frame (the paper: 1).
        canvas: the pretext canvas (paper: 224, so a pretext clip shows half the frame; 128: 7/8, as finetuning).
        transforms: the V3S label space preset (paper Table 3's "V3S" = all four transformations).
        pretrain_steps, pretrain_batch, pretrain_lr: the fixed pretraining budget.
        train_per_class: labelled videos per class for finetuning (the low-label regime where pretraining matters).
        finetune_steps, finetune_batch, finetune_lr, backbone_lr_mult: the same budget for both arms.
        seeds: finetuning seeds (each runs V3S init and random init).
        jobs: worker processes for synth and extract.
        workers: DataLoader workers of the training runs (finetuning runs side by side load in-process).
        finetune_jobs: finetuning runs side by side on a CPU machine, one thread each (on a GPU: one at a time).
    """

    out: str = "demo_out"
    class_set: str = "kinds"
    classes: int = 10
    videos_per_class: int = 80
    synth_size: tuple[int, int] = (72, 96)
    aslan_classes: int = 20
    aslan_videos_per_class: int = 12
    aslan_pairs_per_fold: int = 40
    store_size: tuple[int, int] = (36, 48)
    backbone: str = "r21d"
    width: float = 0.25
    input_mode: str = "diff"
    clip_len: int = 16
    clip_size: int = 32
    frame_step: int = 2
    canvas: int = 224
    transforms: str = "all"
    pretrain_steps: int = 1500
    pretrain_batch: int = 16
    pretrain_lr: float = 0.05
    pretrain_val_videos: int = 50
    train_per_class: int = 10
    finetune_steps: int = 400
    finetune_batch: int = 16
    finetune_lr: float = 0.05
    backbone_lr_mult: float = 1.0
    finetune_val_videos: int = 30
    seeds: tuple[int, ...] = (0, 1)
    jobs: int = 2
    workers: int = 1
    finetune_jobs: int = 2


class Clock:
    """Wall time per step, for the report (a rerun shows which steps were reused)."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.times = log, {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        self.log(f"== {name}")
        t0 = time.perf_counter()
        result = fn()
        self.times[name] = time.perf_counter() - t0
        self.log(f"   {name}: {self.times[name]:.1f} s")
        return result


def _train(run: Callable, config, out: Path):
    """Run or resume a training run; a finished run only reloads (its last.pt is at the final step)."""
    return run(replace(config, resume=(out / "last.pt").is_file()))


def _final_train_loss(run_dir: Path, last: int = 5) -> float:
    """Mean training loss over a run's last `last` logged epochs (its metrics.jsonl)."""
    losses = [row["loss"] for row in read_metrics(run_dir / "metrics.jsonl") if row.get("phase") == "train"]
    return float(np.mean(losses[-last:])) if losses else float("nan")


def _timed_finetune(config: FinetuneConfig, threads: int | None = None) -> float:
    """One finetuning run (on `threads` CPU threads when given); returns its wall time in seconds."""
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    _train(finetune, config, Path(config.out))
    return time.perf_counter() - t0


def _finetune_all(configs: list[FinetuneConfig], jobs: int) -> list[float]:
    """Run the finetuning runs, `jobs` at a time (each on one thread) on a CPU; one after another otherwise.

    Two one-thread processes on two cores trained 1.4x more clips per second than one two-thread process here
    (docs/demo.md), and a busy machine slows a one-thread run far less than a two-thread one.
    """
    if jobs <= 1:
        return [_timed_finetune(config) for config in configs]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, backend="loky")(delayed(_timed_finetune)(c, threads=1) for c in configs)


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole pipeline; return the results dict (also written to OUT/results.json and OUT/REPORT.md)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(log)
    data, aslan_data, store = out / "data" / "synth", out / "data" / "synth_aslan", out / "store"
    height, width = cfg.store_size
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    synth = SynthConfig(classes=cfg.classes, videos_per_class=cfg.videos_per_class, size=cfg.synth_size,
                        class_set=cfg.class_set)
    aslan = SynthConfig(layout="aslan", classes=cfg.aslan_classes, videos_per_class=cfg.aslan_videos_per_class,
                        pairs_per_fold=cfg.aslan_pairs_per_fold, size=cfg.synth_size)
    clock("synth", lambda: (generate(synth, data, jobs=cfg.jobs), generate(aslan, aslan_data, jobs=cfg.jobs)))
    sheet = out / "synth_contact_sheet.png"
    if not sheet.is_file():
        write_contact_sheet(data, synth, sheet)

    def extract() -> None:
        for root, name in ((data, "ucf101"), (aslan_data, "aslan")):
            summary = run_extract(ExtractConfig(root=str(root), dataset=name, out=str(store), height=height,
                                                width=width, jobs=cfg.jobs, quiet=True))
            if summary.failed:
                raise RuntimeError(f"extracting {root} failed for {summary.failed} videos; see `v3s-prep info {store} --failures`")
    clock("extract", extract)

    common = dict(store=str(store), dataset="ucf101", split="1", clip_len=cfg.clip_len, clip_size=cfg.clip_size,
                  workers=cfg.workers, log_every=50, device="auto")
    pre_dir = out / "runs" / "pretrain"
    pre_cfg = PretrainConfig(out=str(pre_dir), backbone=cfg.backbone, width=cfg.width, input_mode=cfg.input_mode,
                             transforms=cfg.transforms, canvas=cfg.canvas,
                             batch_size=cfg.pretrain_batch, lr=cfg.pretrain_lr, max_steps=cfg.pretrain_steps,
                             epochs=10 ** 6, val_videos=cfg.pretrain_val_videos, ckpt_every=250, **common)
    clock("pretrain", lambda: _train(pretrain, pre_cfg, pre_dir))
    pre_ckpt = pre_dir / "last.pt"
    parallel = 1 if torch.cuda.is_available() else max(1, min(cfg.finetune_jobs, os.cpu_count() or 1))

    finetunes: dict[str, dict[int, Path]] = {"v3s": {}, "random": {}}
    configs = []
    for seed in cfg.seeds:
        for arm in ("v3s", "random"):
            run_dir = out / "runs" / f"finetune-{arm}-seed{seed}"
            init = (dict(init=str(pre_ckpt)) if arm == "v3s"
                    else dict(scratch=True, backbone=cfg.backbone, width=cfg.width, input_mode=cfg.input_mode))
            ft_cfg = FinetuneConfig(out=str(run_dir), batch_size=cfg.finetune_batch, lr=cfg.finetune_lr,
                                    backbone_lr_mult=cfg.backbone_lr_mult if arm == "v3s" else 1.0,
                                    max_steps=cfg.finetune_steps, epochs=10 ** 6, frame_step=cfg.frame_step,
                                    no_flip=cfg.class_set == "directions",   # flips swap its direction classes
                                    train_per_class=cfg.train_per_class, val_videos=cfg.finetune_val_videos,
                                    seed=seed, ckpt_every=10 ** 6, **init, **common)
            configs.append(replace(ft_cfg, workers=0) if parallel > 1 else ft_cfg)
            finetunes[arm][seed] = run_dir / "last.pt"
    took = clock(f"finetune ({len(configs)} runs, {parallel} at a time)", lambda: _finetune_all(configs, parallel))
    for config, sec in zip(configs, took):
        log(f"   {Path(config.out).name}: {sec:.1f} s")

    eval_common = dict(store=str(store), dataset="ucf101", split="1", workers=0, progress=False)
    recognition = {arm: {seed: clock(f"recognition {arm} seed {seed}", lambda p=p: run_recognition(
        RecognitionConfig(ckpt=str(p), **eval_common))) for seed, p in runs.items()} for arm, runs in finetunes.items()}
    retrieval = {
        "v3s": clock("retrieval v3s", lambda: run_retrieval(RetrievalConfig(ckpt=str(pre_ckpt), layer="pool",
                                                                            frame_step=cfg.frame_step, **eval_common))),
        "random": clock("retrieval random", lambda: run_retrieval(RetrievalConfig(
            random=True, backbone=cfg.backbone, width=cfg.width, seed=0, input_mode=cfg.input_mode, layer="pool", clip_len=cfg.clip_len,
            clip_size=cfg.clip_size, frame_step=cfg.frame_step, out=str(out / "eval" / "retrieval-random"),
            cache_dir=str(out / "eval" / "features-random"), **eval_common))),
    }
    aslan_common = dict(store=str(store), dataset="aslan", pairs=str(aslan_data / "pairs.csv"), workers=0, progress=False,
                        frame_step=cfg.frame_step)
    aslan_res = {
        "v3s": clock("aslan v3s", lambda: run_aslan(AslanConfig(ckpt=str(pre_ckpt), **aslan_common))),
        "random": clock("aslan random", lambda: run_aslan(AslanConfig(
            random=True, backbone=cfg.backbone, width=cfg.width, seed=0, input_mode=cfg.input_mode,
            clip_len=cfg.clip_len,
            clip_size=cfg.clip_size, out=str(out / "eval" / "aslan-random"),
            cache_dir=str(out / "eval" / "features-random"), **aslan_common))),
    }
    checks = clock("pretext checks", lambda: pretext_shortcut_checks(pre_ckpt, store, "ucf101", "1", cache=out / "eval" / "pretext_checks.json"))

    pre = load_checkpoint(pre_ckpt, kind="v3s-pretrain")
    results = {
        "config": asdict(cfg),
        "pretext": {"val": pre["metrics"], "step": pre["step"],
                    "n_spatial": len(checks["spatial_classes"]), "n_temporal": len(checks["temporal_classes"])},
        "checks": checks,
        "finetune_top1": {arm: {str(s): r["video"]["top1"] for s, r in runs.items()} for arm, runs in recognition.items()},
        "finetune_train_loss": {arm: {str(s): _final_train_loss(p.parent) for s, p in runs.items()}
                                for arm, runs in finetunes.items()},
        "retrieval": {arm: r["topk"] for arm, r in retrieval.items()},
        "aslan": {arm: {"accuracy": r["accuracy_mean"], "std_error": r["accuracy_std_error"], "auc": r["auc"]}
                  for arm, r in aslan_res.items()},
        "files": {
            "contact_sheet": str(sheet), "pretrain_curves": str(pre_dir / "curves.png"),
            **{f"confusion_{arm}_seed{s}": str(r["files"].get("confusion")) for arm, runs in recognition.items()
               for s, r in runs.items()},
            **{f"retrieval_topk_{arm}": str(r["files"].get("topk")) for arm, r in retrieval.items()},
            **{f"aslan_roc_{arm}": str(r["files"].get("roc")) for arm, r in aslan_res.items()},
        },
        "seconds": clock.times,
    }
    gains = [results["finetune_top1"]["v3s"][str(s)] - results["finetune_top1"]["random"][str(s)] for s in cfg.seeds]
    results["finetune_gain_mean"] = float(np.mean(gains))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report = format_report(results)
    (out / "REPORT.md").write_text(report)
    log(report)
    return results


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def format_report(r: dict[str, Any]) -> str:
    """REPORT.md: the one table, then the checks issue 8 asks for, each with its number."""
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
        "## Checks (issue 8, in order)",
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default=DemoConfig.out, show_default=True, help="Output folder.")
@click.option("--pretrain-steps", type=int, default=DemoConfig.pretrain_steps, show_default=True)
@click.option("--finetune-steps", type=int, default=DemoConfig.finetune_steps, show_default=True)
@click.option("--seeds", default=",".join(map(str, DemoConfig.seeds)), show_default=True, help="Comma list of finetuning seeds.")
@click.option("--backbone-lr-mult", type=float, default=DemoConfig.backbone_lr_mult, show_default=True,
              help="The V3S arm's backbone learning rate x this (random init keeps x1); 0.1 with --finetune-steps "
                   "1200 is docs/demo.md's longer-finetuning check (use a new --out).")
def main(out: str, pretrain_steps: int, finetune_steps: int, seeds: str, backbone_lr_mult: float) -> None:
    """Run the whole V3S pipeline on the embedded synthetic set and write REPORT.md (docs/demo.md)."""
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise click.UsageError(f"--seeds {seeds!r}: give a comma list of integers, e.g. 0,1")
    if backbone_lr_mult < 0:
        raise click.UsageError(f"--backbone-lr-mult {backbone_lr_mult}: must be >= 0")
    run_demo(DemoConfig(out=out, pretrain_steps=pretrain_steps, finetune_steps=finetune_steps, seeds=seed_list,
                        backbone_lr_mult=backbone_lr_mult))


if __name__ == "__main__":
    main()

"""The main job, and the one module that imports every stage: on the embedded default dataset, synth -> extract ->
V3S pretraining -> finetune (V3S vs random init, several seeds) -> recognition, retrieval and ASLAN -> REPORT.md.

Every step reuses what a previous run finished (the synthetic folders, the store, the checkpoints, the feature
cache), so a rerun takes seconds for what is done. See docs/demo.md for the recipe and why each setting is what it is.

    v3s-eval demo --out demo_out        (what `make demo` runs; also python -m v3s.pipeline.demo)
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from v3s.evaluate.aslan import run_aslan
from v3s.evaluate.config import AslanConfig, RecognitionConfig, RetrievalConfig
from v3s.evaluate.recognition import run_recognition
from v3s.evaluate.retrieval import run_retrieval
from v3s.evaluate.shortcuts import pretext_shortcut_checks
from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.synth import SynthConfig, generate, write_contact_sheet
from v3s.shared.atomic import write_json
from v3s.shared.checkpoint import load_checkpoint
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.train.finetune import finetune
from v3s.train.logging import read_metrics
from v3s.train.pretrain import pretrain

from .config import DemoConfig
from .report import format_report


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
            summary = run_extract(ExtractConfig(root=str(root), dataset=name, out=str(store), size=(height, width),
                                                jobs=cfg.jobs, quiet=True))
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

    eval_common = dict(store=str(store), dataset="ucf101", split="1", workers=0, quiet=True)
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
    aslan_common = dict(store=str(store), dataset="aslan", pairs=str(aslan_data / "pairs.csv"), workers=0, quiet=True,
                        frame_step=cfg.frame_step)
    aslan_res = {
        "v3s": clock("aslan v3s", lambda: run_aslan(AslanConfig(ckpt=str(pre_ckpt), **aslan_common))),
        "random": clock("aslan random", lambda: run_aslan(AslanConfig(
            random=True, backbone=cfg.backbone, width=cfg.width, seed=0, input_mode=cfg.input_mode,
            clip_len=cfg.clip_len,
            clip_size=cfg.clip_size, out=str(out / "eval" / "aslan-random"),
            cache_dir=str(out / "eval" / "features-random"), **aslan_common))),
    }
    checks = clock("pretext checks", lambda: pretext_shortcut_checks(pre_ckpt, store, cache=out / "eval" / "pretext_checks.json"))

    pre = load_checkpoint(pre_ckpt, kind="v3s-pretrain")
    results = {
        "config": cfg.to_dict(),
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
    write_json(out / "results.json", results)
    report = format_report(results)
    (out / "REPORT.md").write_text(report)
    log(report)
    return results


if __name__ == "__main__":  # python -m v3s.pipeline.demo
    from .cli import demo

    demo()

"""The main job, and the one module that imports every stage: on the embedded default dataset, synth -> extract ->
V3S pretraining -> finetune (V3S vs random init, several seeds) -> recognition, retrieval and ASLAN -> REPORT.md.

Every step reuses what a previous run finished (the synthetic folders, the store, the checkpoints, the feature
cache), so a rerun takes seconds for what is done. See docs/demo.md for the recipe and why each setting is what it is.

    v3s-eval demo --out demo_out        (what `make demo` runs; also python -m v3s.pipeline.demo)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from v3s.evaluate.aslan import run_aslan
from v3s.evaluate.config import (AslanConfig, KnnConfig, LinearConfig, RecognitionConfig, RetrievalConfig,
                                 SpeedinessConfig)
from v3s.evaluate.knn import run_knn
from v3s.evaluate.frozen import video_groups
from v3s.evaluate.linear import run_linear
from v3s.evaluate.recognition import run_recognition
from v3s.evaluate.retrieval import run_retrieval
from v3s.evaluate.shortcuts import pretext_shortcut_checks
from v3s.evaluate.speediness import run_speediness
from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.synth import SynthConfig, generate, write_contact_sheet
from v3s.shared.atomic import write_json, write_text
from v3s.shared.checkpoint import load_checkpoint
from v3s.shared.config import FinetuneConfig, PretrainConfig, config_diff
from v3s.shared.paths import check_path
from v3s.shared.store import Store
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

    def record(self, name: str, seconds: float) -> None:
        """A step timed elsewhere (in a worker process)."""
        self.times[name] = seconds
        self.log(f"   {name}: {seconds:.1f} s")


def _final_train_loss(run_dir: Path, last: int = 5) -> float:
    """Mean training loss over a run's last `last` logged epochs (its metrics.jsonl)."""
    losses = [row["loss"] for row in read_metrics(run_dir / "metrics.jsonl") if row.get("phase") == "train"]
    return float(np.mean(losses[-last:])) if losses else float("nan")


Job = tuple[str, Callable[[Any], Any], Any]   # (name, function, its config)


def _jobs(cfg: DemoConfig) -> int:
    """Processes that train or evaluate side by side: finetune_jobs on a CPU, one on a GPU."""
    return 1 if torch.cuda.is_available() else max(1, min(cfg.finetune_jobs, os.cpu_count() or 1))


def _finetune_quietly(config: FinetuneConfig) -> None:
    """One finetuning run, or the rest of it, without its progress lines."""
    finetune(config, log=lambda line: None)


def _run_group(group: list[Job], threads: int | None) -> list[tuple[str, float, Any]]:
    """Run a group's tasks in order (on `threads` CPU threads when given): (name, seconds, result) each."""
    if threads is not None:
        torch.set_num_threads(threads)
    done = []
    for name, fn, config in group:
        t0 = time.perf_counter()
        result = fn(config)
        done.append((name, time.perf_counter() - t0, result))
    return done


def _in_parallel(groups: list[list[Job]], jobs: int, clock: Clock) -> dict[str, Any]:
    """Run the groups `jobs` at a time, each in its own process on one thread (on a CPU; jobs 1: one after another
    here); every task's time goes to the clock; {name: result}.

    Two one-thread processes on two cores trained 1.4x more clips per second than one two-thread process here
    (docs/demo.md), and a busy machine slows a one-thread run far less than a two-thread one.
    """
    if jobs <= 1:
        done = [_run_group(group, None) for group in groups]
    else:
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=jobs, backend="loky")(delayed(_run_group)(group, 1) for group in groups)
    results = {}
    for name, seconds, result in (task for group in done for task in group):
        clock.record(name, seconds)
        results[name] = result
    return results


CONFIG_FILE = "demo_config.json"


def _check_folder(cfg: DemoConfig) -> Path:
    """The output folder, writable, and not holding a demo made with other settings (its runs would not fit)."""
    out = check_path(cfg.out, "out-dir", "--out")
    old_file = out / CONFIG_FILE
    if old_file.is_file():
        old = DemoConfig.from_dict(json.loads(old_file.read_text()))
        diff = config_diff(old, cfg, ignore=frozenset({"out"}))
        if diff:
            raise ValueError(f"--out {str(out)!r} holds a demo run with other settings ("
                             + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                             + "); choose a new --out, or rerun with its settings to reuse its work")
    elif any(out.iterdir()):
        raise ValueError(f"--out {str(out)!r} is not empty and holds no demo run; choose a new or empty folder")
    write_json(old_file, cfg.to_dict())
    return out


def _synth_and_extract(cfg: DemoConfig, out: Path, clock: Clock) -> Path:
    """The synthetic sets (rendered once) and their store; the store's path."""
    data, aslan_data, store = out / "data" / "synth", out / "data" / "synth_aslan", out / "store"
    synth = SynthConfig(classes=cfg.classes, videos_per_class=cfg.videos_per_class, size=cfg.synth_size,
                        class_set=cfg.class_set)
    aslan = SynthConfig(layout="aslan", classes=cfg.aslan_classes, videos_per_class=cfg.aslan_videos_per_class,
                        pairs_per_fold=cfg.aslan_pairs_per_fold, size=cfg.synth_size)
    clock("synth", lambda: (generate(synth, data, jobs=cfg.jobs), generate(aslan, aslan_data, jobs=cfg.jobs)))
    if not (out / "synth_contact_sheet.png").is_file():
        write_contact_sheet(data, synth, out / "synth_contact_sheet.png")

    def extract() -> None:
        for root, name in ((data, "ucf101"), (aslan_data, "aslan")):
            summary = run_extract(ExtractConfig(root=str(root), dataset=name, out=str(store), size=cfg.store_size,
                                                jobs=cfg.jobs, quiet=True))
            if summary.failed:
                raise RuntimeError(f"extracting {root} failed for {summary.failed} videos; see "
                                   f"`v3s-prep info {store} --failures`")
    clock("extract", extract)
    return store


def _train_runs(cfg: DemoConfig, out: Path, store: Path, clock: Clock, log: Callable[[str], None]
                ) -> tuple[Path, dict[str, dict[int, Path]]]:
    """V3S pretraining, then finetuning from it and from random init for every seed (a rerun continues or reuses
    them); (the pretraining checkpoint, arm -> seed -> finetuning checkpoint)."""
    common = dict(store=str(store), dataset="ucf101", split="1", clip_len=cfg.clip_len, clip_size=cfg.clip_size,
                  workers=cfg.workers, log_every=50, device="auto", epochs=10 ** 6)
    pre_dir = out / "runs" / "pretrain"
    pre_cfg = PretrainConfig(out=str(pre_dir), backbone=cfg.backbone, width=cfg.width, input_mode=cfg.input_mode,
                             transforms=cfg.transforms, canvas=cfg.canvas, pretext_noise=cfg.pretext_noise,
                             batch_size=cfg.pretrain_batch,
                             lr=cfg.pretrain_lr, max_steps=cfg.pretrain_steps, val_videos=cfg.pretrain_val_videos,
                             monitor_every=cfg.pretrain_steps // cfg.monitor_measurements or cfg.pretrain_steps,
                             ckpt_every=250, **common)
    clock("pretrain", lambda: pretrain(pre_cfg, log=lambda line: None))
    pre_ckpt = pre_dir / "last.pt"
    parallel = _jobs(cfg)
    finetunes: dict[str, dict[int, Path]] = {"v3s": {}, "random": {}}
    configs = []
    for seed in cfg.seeds:
        for arm in ("v3s", "random"):
            run_dir = out / "runs" / f"finetune-{arm}-seed{seed}"
            init = (dict(init=str(pre_ckpt)) if arm == "v3s"
                    else dict(scratch=True, backbone=cfg.backbone, width=cfg.width, input_mode=cfg.input_mode))
            configs.append(FinetuneConfig(
                out=str(run_dir), batch_size=cfg.finetune_batch, lr=cfg.finetune_lr,
                backbone_lr_mult=cfg.backbone_lr_mult if arm == "v3s" else 1.0, max_steps=cfg.finetune_steps,
                frame_step=cfg.frame_step, no_flip=cfg.class_set == "directions",  # flips swap its direction classes
                train_per_class=cfg.train_per_class, val_videos=cfg.finetune_val_videos, seed=seed,
                ckpt_every=10 ** 6, **init, **{**common, "workers": 0 if parallel > 1 else cfg.workers}))
            finetunes[arm][seed] = run_dir / "last.pt"
    clock(f"finetune ({len(configs)} runs, {parallel} at a time)", lambda: _in_parallel(
        [[(Path(c.out).name, _finetune_quietly, c)] for c in configs], parallel, clock))
    return pre_ckpt, finetunes


def _evaluate(cfg: DemoConfig, out: Path, store: Path, pre_ckpt: Path, finetunes: dict[str, dict[int, Path]],
              clock: Clock) -> dict[str, Any]:
    """Every evaluation of both arms with one protocol: recognition of the finetuned runs; retrieval, kNN, linear
    probe and ASLAN of the pretrained backbone against a random init; the pretext checks; a speediness curve."""
    quiet = dict(workers=0, quiet=True)
    data = dict(store=str(store), dataset="ucf101", split="1", **quiet)
    arms = {"v3s": dict(ckpt=str(pre_ckpt)),
            "random": dict(random=True, backbone=cfg.backbone, width=cfg.width, seed=0, input_mode=cfg.input_mode,
                           clip_len=cfg.clip_len, clip_size=cfg.clip_size,
                           cache_dir=str(out / "eval" / "features-random"))}

    def where(arm: str, name: str) -> dict[str, str]:
        return {"out": str(out / "eval" / f"{name}-random")} if arm == "random" else {}

    frozen = dict(layer="pool", frame_step=cfg.frame_step)
    train = Store(store).split("ucf101", "1", "train")
    # The linear probe's cross-validation: 5 folds, fewer where a class has fewer train videos or the list fewer
    # video groups (the tests' tiny sets).
    folds = min(5, int(np.bincount([v.label for v in train]).min()), len(np.unique(video_groups(train)[0])))
    per_task = {"retrieval": {}, "knn": {}, "linear": {"folds": folds}}
    recognition = [[(f"recognition {arm} seed {seed}", run_recognition, RecognitionConfig(ckpt=str(p), **data))]
                   for arm, runs in finetunes.items() for seed, p in runs.items()]
    # One group per arm, in this order: kNN and the linear probe read the features retrieval cached.
    frozen_tasks = [[*((f"{name} {arm}", run, config(**arms[arm], **frozen, **data, **where(arm, name),
                                                        **per_task[name]))
                       for name, run, config in (("retrieval", run_retrieval, RetrievalConfig),
                                                 ("knn", run_knn, KnnConfig), ("linear", run_linear, LinearConfig))),
                     (f"aslan {arm}", run_aslan, AslanConfig(**arms[arm], store=str(store), dataset="aslan",
                                                             frame_step=cfg.frame_step, **quiet,
                                                             **where(arm, "aslan")))] for arm in arms]
    done = _in_parallel(recognition + frozen_tasks, _jobs(cfg), clock)
    r: dict[str, Any] = {"recognition": {arm: {seed: done[f"recognition {arm} seed {seed}"] for seed in runs}
                                         for arm, runs in finetunes.items()}}
    for name in ("retrieval", "knn", "linear", "aslan"):
        r[name] = {arm: done[f"{name} {arm}"] for arm in arms}
    r["checks"] = clock("pretext checks", lambda: pretext_shortcut_checks(
        pre_ckpt, store, cache=out / "eval" / "pretext_checks.json"))
    test = Store(store).split("ucf101", "1", "test")[0]
    r["speediness"] = clock("speediness", lambda: run_speediness(SpeedinessConfig(
        ckpt=str(pre_ckpt), store=str(store), dataset="ucf101", key=test.rel_path, **quiet)))
    return r


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole pipeline; return the results dict (also written to OUT/results.json and OUT/REPORT.md)."""
    out = _check_folder(cfg)
    clock = Clock(log)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    store = _synth_and_extract(cfg, out, clock)
    pre_ckpt, finetunes = _train_runs(cfg, out, store, clock, log)
    r = _evaluate(cfg, out, store, pre_ckpt, finetunes, clock)
    pre = load_checkpoint(pre_ckpt, kind="v3s-pretrain")
    arms = ("v3s", "random")
    results = {
        "config": cfg.to_dict(),
        "pretext": {"val": pre["metrics"], "step": pre["step"], "n_spatial": len(r["checks"]["spatial_classes"]),
                    "n_temporal": len(r["checks"]["temporal_classes"])},
        "checks": r["checks"],
        "monitor": [(m["step"], m["knn_top1"]) for m in read_metrics(pre_ckpt.parent / "metrics.jsonl")
                    if m["phase"] == "monitor"],
        "finetune_top1": {arm: {str(s): x["video"]["top1"] for s, x in runs.items()}
                          for arm, runs in r["recognition"].items()},
        "finetune_train_loss": {arm: {str(s): _final_train_loss(p.parent) for s, p in runs.items()}
                                for arm, runs in finetunes.items()},
        "retrieval": {arm: r["retrieval"][arm]["topk"] for arm in arms},
        "knn_top1": {arm: r["knn"][arm]["top1"] for arm in arms},
        "knn_k": {arm: r["knn"][arm]["k"] for arm in arms},
        "linear_top1": {arm: r["linear"][arm]["top1"] for arm in arms},
        "aslan": {arm: {"accuracy": x["accuracy_mean"], "std_error": x["accuracy_std_error"], "auc": x["auc"]}
                  for arm, x in r["aslan"].items()},
        "speediness": {"video": r["speediness"]["source"]["video"], "summary": r["speediness"]["summary"]},
        "files": {
            "contact_sheet": str(out / "synth_contact_sheet.png"), "pretrain_curves": str(pre_ckpt.parent / "curves.png"),
            **{f"confusion_{arm}_seed{s}": str(x["files"].get("confusion")) for arm, runs in r["recognition"].items()
               for s, x in runs.items()},
            **{f"retrieval_topk_{arm}": str(r["retrieval"][arm]["files"].get("topk")) for arm in arms},
            **{f"aslan_roc_{arm}": str(x["files"].get("roc")) for arm, x in r["aslan"].items()},
            "speediness": str(r["speediness"]["files"].get("curve")),
        },
        "seconds": clock.times,
    }
    gains = [results["finetune_top1"]["v3s"][str(s)] - results["finetune_top1"]["random"][str(s)] for s in cfg.seeds]
    results["finetune_gain_mean"] = float(np.mean(gains))
    write_json(out / "results.json", results)
    report = format_report(results)
    write_text(out / "REPORT.md", report)
    log(report)
    return results


if __name__ == "__main__":  # python -m v3s.pipeline.demo
    from .cli import demo

    demo()

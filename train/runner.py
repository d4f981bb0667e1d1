"""One training run from datasets to checkpoints: device and precision, DDP, the epoch loop, validation,
best/last checkpoints, exact resume, logs. Pretraining and finetuning differ only in what they hand to `fit`.

Steps are the unit of progress: epoch e covers global steps [e * S, (e + 1) * S) for S steps per epoch, so a
checkpoint's step alone says where the data order resumes. A checkpoint at an epoch boundary is written after
that epoch's validation; one written every --ckpt-every steps inside an epoch is resumed mid-epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from v3s.shared.atomic import write_json
from v3s.shared.checkpoint import FORMAT_VERSION, code_version, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.shared.runtime import amp_dtype, configure_backends, default_workers
from v3s.shared.tasks import Task

from .data import EpochSampler, ShardSampler, check_shared_memory, make_loader, validation_workers
from .distributed import DistInfo, all_reduce_sum, barrier, sync_buffers
from .logging import Progress, RunLogger, plot_curves
from .loop import Diverged, StepContext, evaluate, summarise, train_one_epoch
from .monitor import Monitor
from .rundir import RunLock, check_run_folder

Config = Union[PretrainConfig, FinetuneConfig]


@dataclass
class RunSpec:
    """What a run trains: everything `fit` needs besides the config.

    Args:
        kind: "v3s-pretrain" | "v3s-finetune" (the checkpoints' kind).
        model: the freshly initialised VideoModel (CPU); fit moves it to the device.
        param_groups: optimiser parameter groups as [{"params": [...], "lr": ...}] (per-group learning rates).
        task: the loss and accuracies (v3s.shared.tasks).
        train_set, val_set: clip datasets (v3s.shared.clips): training items drawn per epoch, validation fixed.
        monitor: given the run's total steps and worker count, the representation monitor (or None); rank 0 runs it.
    """

    kind: str
    model: nn.Module
    param_groups: list[dict]
    task: Task
    train_set: Dataset
    val_set: Dataset
    monitor: Callable[[int, int], Monitor | None] | None = None


@dataclass
class RunResult:
    """What a finished run returns: the trained (unwrapped, CPU-side reference) model and where it ended.

    resumed_from: the step a continued run started from (None for a new run); equal to `step` when the run was
    already finished and nothing was trained.
    """

    model: nn.Module
    step: int
    total: int
    metrics: dict[str, float]
    best: float
    out: Path
    resumed_from: int | None = None


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    """(scheduler, per_step): cosine decays per step to 0 over the run; plateau is VCOP's (x0.1 after 50 flat epochs)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1)), True
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=0.1, patience=50, min_lr=1e-5), False
    if name == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0), True
    raise ValueError(f"lr_schedule {name!r} is not one of cosine, plateau, constant")


def use_sync_bn(setting: str, info: DistInfo) -> bool:
    """--sync-bn: auto is on for CUDA DDP runs; on needs a CUDA DDP run (SyncBatchNorm runs only on GPUs)."""
    if setting == "on" and not (info.distributed and info.device.type == "cuda"):
        raise ValueError("--sync-bn on needs a DDP run on CUDA GPUs (torchrun with --device cuda); SyncBatchNorm "
                         "does not run on the CPU, and a single process has nothing to synchronise")
    return setting == "on" or (setting == "auto" and info.distributed and info.device.type == "cuda")


def _check_batch(config: Config, spec: RunSpec, info: DistInfo) -> None:
    """ValueError for a batch that does not fit the ranks or the training set."""
    if config.batch_size % info.world_size:
        raise ValueError(f"--batch-size {config.batch_size} is not divisible by the {info.world_size} DDP ranks")
    if config.batch_size > len(spec.train_set):
        raise ValueError(f"--batch-size {config.batch_size} is larger than the {len(spec.train_set)} training videos "
                         f"of {config.dataset!r} split {config.split}")


def _restore(path: Path, config: Config, spec: RunSpec, steps_per_epoch: int, states: dict) -> tuple[int, float, dict]:
    """Load last.pt into the model, optimizer, scheduler and scaler (`states`) and the RNGs; (step, best, metrics).

    The folder's config was checked against this run's already (`check_run_folder`).
    """
    ckpt = load_checkpoint(path, kind=spec.kind)
    if ckpt["rng"]["loader"]["steps_per_epoch"] != steps_per_epoch:
        raise ValueError(f"--resume: the run in {config.out} had {ckpt['rng']['loader']['steps_per_epoch']} steps per "
                         f"epoch, now {steps_per_epoch}: the store's videos changed")
    for name, obj in states.items():
        obj.load_state_dict(ckpt[name])
    set_rng_state(ckpt["rng"])
    return ckpt["step"], ckpt["best"], ckpt["metrics"]


def fit(config: Config, spec: RunSpec, info: DistInfo, log: Callable[[str], None] = print) -> RunResult:
    """Train `spec.model` as `config` says, or continue the run its folder holds; write RUN_DIR/{last.pt, best.pt,
    config.json, metrics.jsonl, curves.png}. The run folder is locked for the whole run (rank 0).

    Raises:
        ValueError: batch size not divisible by the ranks or larger than the training set; --out holding files
            that are not a run's, or a run with other settings (v3s.train.rundir); another process on --out.
    """
    _check_batch(config, spec, info)
    lock = RunLock(Path(config.out)) if info.is_main else None
    try:
        return _fit(config, spec, info, log)
    finally:
        if lock is not None:
            lock.close()


def _fit(config: Config, spec: RunSpec, info: DistInfo, log: Callable[[str], None]) -> RunResult:
    resuming = check_run_folder(config)
    out, device = Path(config.out), info.device
    last_path, best_path = out / "last.pt", out / "best.pt"
    configure_backends(device)
    per_rank = config.batch_size // info.world_size
    workers = config.workers if config.workers is not None else default_workers()
    video = spec.train_set.videos[0]
    check_shared_memory(per_rank * config.clip_len * video.height * video.width * 3, workers, validation_workers(workers))
    sampler = EpochSampler(len(spec.train_set), seed=config.seed, info=info)
    steps_per_epoch = sampler.per_epoch() // per_rank
    total = config.epochs * steps_per_epoch if config.max_steps is None else min(config.max_steps, config.epochs * steps_per_epoch)
    train_loader = make_loader(spec.train_set, sampler, batch_size=per_rank, workers=workers, device=device,
                               seed=config.seed, drop_last=True)
    val_loader = make_loader(spec.val_set, ShardSampler(len(spec.val_set), info), batch_size=per_rank,
                             workers=validation_workers(workers), device=device, seed=config.seed, drop_last=False)

    model = spec.model.to(device)
    if use_sync_bn(config.sync_bn, info):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(spec.param_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler, per_step = make_scheduler(config.lr_schedule, optimizer, total)
    dtype = amp_dtype(config.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    states = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    step, best, metrics = 0, -math.inf, {}
    if resuming:
        step, best, metrics = _restore(last_path, config, spec, steps_per_epoch, states)
        log(f"{out}: continuing the run from step {step} of {total}" if step < total else
            f"{out}: the run is finished (step {step} of {total}); nothing to train")
    resumed_from = step if resuming else None

    train_model: nn.Module = model
    if info.distributed:
        train_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)
    ctx = StepContext(device=device, amp_dtype=dtype, clip_grad=config.clip_grad, seed=config.seed, rank=info.rank,
                      world_size=info.world_size, channels_last=config.channels_last, clip_size=config.clip_size)

    if info.is_main:
        write_json(out / "config.json", config.to_dict())
    logger = RunLogger(out, info.is_main, resume_step=resumed_from)
    # Built before the progress bar, so that what it says is not drawn over the bar.
    monitor = spec.monitor(total, workers) if spec.monitor is not None and info.is_main and step < total else None
    progress = Progress(total, step, info.is_main and step < total, desc=spec.kind)

    def checkpoint(at_step: int) -> dict:
        epoch, position = divmod(at_step, steps_per_epoch)
        return {"kind": spec.kind, "format_version": FORMAT_VERSION, "config": config.to_dict(),
                **{name: obj.state_dict() for name, obj in states.items()}, "epoch": epoch, "step": at_step,
                "rng": rng_state({"seed": config.seed, "epoch": epoch, "position": position,
                                  "steps_per_epoch": steps_per_epoch}),
                "metrics": metrics, "best": best, "code_version": code_version()}

    def on_step(at_step: int) -> None:
        if monitor is not None and monitor.due(at_step, total):
            logger.log("monitor", at_step, at_step // steps_per_epoch, monitor.measure(model, device, dtype))
        # Epoch ends (and the run's end) write their own checkpoint after validation; no checkpoint of a diverged
        # network ever replaces a good one (one host sync per --ckpt-every steps).
        if info.is_main and at_step % config.ckpt_every == 0 and at_step % steps_per_epoch and at_step < total:
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise Diverged(f"the weights are no longer finite at step {at_step}")
            save_checkpoint(checkpoint(at_step), last_path)

    while step < total:
        epoch, position = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start=position * per_rank)
        try:
            step = train_one_epoch(train_model, spec.task, train_loader, optimizer, scheduler if per_step else None,
                                   scaler, ctx, step=step, last_step=min((epoch + 1) * steps_per_epoch, total),
                                   progress=progress, log=lambda s, m: logger.log("train", s, epoch, m),
                                   log_every=config.log_every, on_step=on_step)
            sync_buffers(model, info)
            metrics = summarise(all_reduce_sum(evaluate(model, spec.task, val_loader, ctx), info), spec.task.metric_names)
            if not math.isfinite(metrics["loss"]):
                raise Diverged(f"the validation loss is {metrics['loss']} after step {step}")
        except Diverged as e:
            raise ValueError(f"{e}: the run diverged (--lr {config.lr:g}); lower --lr, or pass --clip-grad; "
                             f"{last_path} keeps the last good checkpoint" + ("" if last_path.exists() else " (none yet)")) from None
        logger.log("val", step, epoch, metrics)
        if not per_step:
            scheduler.step(metrics["loss"])
        score = spec.task.score(metrics)
        improved, best = score > best, max(best, score)
        if info.is_main:
            ckpt = checkpoint(step)
            save_checkpoint(ckpt, last_path)
            if improved:
                save_checkpoint(ckpt, best_path)
            del ckpt
    progress.close()
    logger.close()
    if info.is_main:
        plot_curves(out / "metrics.jsonl", out / "curves.png")
    barrier(info)  # rank 0's files exist before any rank returns (a caller may read them)
    return RunResult(model=model, step=step, total=total, metrics=metrics, best=best, out=out, resumed_from=resumed_from)

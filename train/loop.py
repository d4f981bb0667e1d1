"""The training loop shared by pretraining and finetuning: train_one_epoch and evaluate.

What differs between the two (how a batch becomes network input and targets, the loss, which accuracies) lives in
a `Task` (train/pretrain.py: PretextTask, train/finetune.py: ClassificationTask).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from .data import seed_for


class Task(Protocol):
    metric_names: tuple[str, ...]

    def inputs(self, batch: Any, generator: torch.Generator | None) -> tuple[torch.Tensor, Any]:
        """Move a collated uint8 batch to the device, augment, normalise: (x (B,3,T,H,W) float, targets).

        generator: the training step's CPU generator, or None for validation, whose draws are fixed per video.
        """

    def loss(self, outputs: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, correct counts (len(metric_names),)) for one batch."""


@dataclass(frozen=True)
class StepContext:
    """Per-run constants of a step: device, autocast dtype (None: fp32), gradient clipping, seeds, memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    clip_grad: float
    seed: int
    rank: int
    world_size: int
    channels_last: bool


# Streams of seed_for(seed, rank, stream, index): one per use, so that no two draws share a seed.
DROPOUT, TRAIN_AUG = 1, 2


def step_generator(ctx: StepContext, stream: int, index: int) -> torch.Generator:
    """A CPU generator (transform parameters are drawn on the CPU) seeded by (seed, rank, stream, index)."""
    return torch.Generator().manual_seed(seed_for(ctx.seed, ctx.rank, stream, index))


def _forward_loss(model: nn.Module, task: Task, x: torch.Tensor, y: Any, ctx: StepContext):
    if ctx.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast(device_type=ctx.device.type, dtype=ctx.amp_dtype or torch.float32, enabled=ctx.amp_dtype is not None):
        return task.loss(model(x), y)


def _accumulate(sums: torch.Tensor, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
    # In-place adds with a Python number launch kernels; building a tensor from host values would copy and sync.
    sums[0] += loss.float() * n
    sums[1] += n
    sums[2:] += correct


def train_one_epoch(model: nn.Module, task: Task, loader: Iterable, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: torch.amp.GradScaler, ctx: StepContext, *, step: int, last_step: int,
                    progress: Any, log: Callable[[int, dict], None], log_every: int,
                    on_step: Callable[[int], None]) -> int:
    """Run optimiser steps over `loader` until it ends or `step` reaches `last_step`; return the step reached.

    Args:
        scheduler: stepped after every optimiser step, or None (a per-epoch schedule stepped by the caller).
        step: global step before the first batch.
        log(step, metrics): gets this rank's mean loss and accuracies every `log_every` steps and at the end.
        on_step(step): called after every step (periodic checkpoints).
    """
    model.train()
    sums = torch.zeros(2 + len(task.metric_names), device=ctx.device)  # loss x clips, clips, correct per metric
    batches = iter(loader)
    while step < last_step:
        t0 = time.perf_counter()
        batch = next(batches, None)
        progress.waited(time.perf_counter() - t0)
        if batch is None:
            break
        # Dropout and augmentation are functions of (seed, rank, step): a resumed run redraws them identically.
        torch.manual_seed(seed_for(ctx.seed, ctx.rank, DROPOUT, step))
        x, y = task.inputs(batch, step_generator(ctx, TRAIN_AUG, step))
        loss, correct = _forward_loss(model, task, x, y, ctx)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if ctx.clip_grad > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), ctx.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        step += 1
        _accumulate(sums, loss.detach(), correct, x.shape[0])
        progress.advance(x.shape[0] * ctx.world_size)
        if step % log_every == 0 or step == last_step:
            # summarise() is a host-device sync: once per log interval, not per step
            m = summarise(sums, task.metric_names)
            log(step, {**m, "lr": optimizer.param_groups[0]["lr"], **progress.flush(loss=m["loss"])})
            sums.zero_()
        on_step(step)
    return step


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, loader: Iterable, ctx: StepContext) -> torch.Tensor:
    """This rank's validation sums [loss x clips, clips, correct per metric] (draws fixed per video by the task).

    Args:
        model: the unwrapped module (no DDP forward: ranks may hold different numbers of validation batches).
    """
    model.eval()
    sums = torch.zeros(2 + len(task.metric_names), device=ctx.device)
    for batch in loader:
        x, y = task.inputs(batch, None)
        loss, correct = _forward_loss(model, task, x, y, ctx)
        _accumulate(sums, loss, correct, x.shape[0])
    return sums


def summarise(sums: torch.Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """{"loss": mean loss, name: accuracy for each metric} from (already all-reduced) sums."""
    s = sums.tolist()
    n = max(s[1], 1.0)
    return {"loss": s[0] / n, **{name: c / n for name, c in zip(names, s[2:])}}

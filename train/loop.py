"""The training loop shared by pretraining and finetuning: train_one_epoch and evaluate.

A batch is a `ClipItem` of stacked fields (uint8 clips, their homographies, targets); every batch, in training and
in validation, becomes network input the same way (`network_input`). What differs between pretraining and
finetuning is the loss and its accuracies: a `Task` (v3s.shared.tasks).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from v3s.shared.clips import ClipItem
from v3s.shared.seeds import DROPOUT, seed_for
from v3s.shared.spatial import network_input
from v3s.shared.tasks import Task


class Diverged(ValueError):
    """The loss stopped being a finite number: the run diverged (a learning rate far too high, most often)."""


@dataclass(frozen=True)
class StepContext:
    """Per-run constants of a step: device, autocast dtype (None: fp32), gradient clipping, seeds, input size."""

    device: torch.device
    amp_dtype: torch.dtype | None
    clip_grad: float
    seed: int
    rank: int
    world_size: int
    channels_last: bool
    clip_size: int


def _forward_loss(model: nn.Module, task: Task, batch: ClipItem, ctx: StepContext):
    """(mean loss, correct counts, clips) of one batch: warp and normalise on the device, forward, loss."""
    x = network_input(batch.clip.to(ctx.device, non_blocking=True), batch.geometry, ctx.clip_size, batch.noise)
    if ctx.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    targets = batch.targets.to(ctx.device, non_blocking=True)
    with torch.autocast(device_type=ctx.device.type, dtype=ctx.amp_dtype or torch.float32, enabled=ctx.amp_dtype is not None):
        loss, correct = task.loss(model(x), targets)
    return loss, correct, x.shape[0]


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
        # Dropout masks are a function of (seed, rank, step): a resumed run redraws them identically.
        torch.manual_seed(seed_for(ctx.seed, ctx.rank, DROPOUT, step))
        loss, correct, n = _forward_loss(model, task, batch, ctx)
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
        _accumulate(sums, loss.detach(), correct, n)
        progress.advance(n * ctx.world_size)
        if step % log_every == 0 or step == last_step:
            # summarise() is a host-device sync: once per log interval, not per step
            m = summarise(sums, task.metric_names)
            if not math.isfinite(m["loss"]):
                raise Diverged(f"the training loss is {m['loss']} at step {step}")
            log(step, {**m, "lr": optimizer.param_groups[0]["lr"], **progress.flush(loss=m["loss"])})
            sums.zero_()
        on_step(step)
    return step


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, loader: Iterable, ctx: StepContext) -> torch.Tensor:
    """This rank's validation sums [loss x clips, clips, correct per metric] (the items' draws are fixed per video).

    Args:
        model: the unwrapped module (no DDP forward: ranks may hold different numbers of validation batches).
    """
    model.eval()
    sums = torch.zeros(2 + len(task.metric_names), device=ctx.device)
    for batch in loader:
        loss, correct, n = _forward_loss(model, task, batch, ctx)
        _accumulate(sums, loss, correct, n)
    return sums


def summarise(sums: torch.Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """{"loss": mean loss, name: accuracy for each metric} from (already all-reduced) sums."""
    s = sums.tolist()
    n = max(s[1], 1.0)
    return {"loss": s[0] / n, **{name: c / n for name, c in zip(names, s[2:])}}

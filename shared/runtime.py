"""Where and how a process computes: the device, the autocast precision, cuDNN settings and DataLoader workers.

One answer for every command, so that `--device`, `--precision` and `--workers` mean the same in training and
evaluation.
"""
from __future__ import annotations

import os

import torch

from .choices import DEVICES, PRECISIONS



def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for --device "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N".

    Args:
        requested: the --device value.
        local_rank: the GPU a torchrun rank drives for "auto" and "cuda" (0 in a single process).
    Raises:
        ValueError: an unknown value, or CUDA asked for where it is absent.
    """
    requested = str(requested)
    if requested == "cpu":
        return torch.device("cpu")
    if requested != "auto" and not (requested == "cuda" or (requested.startswith("cuda:") and requested[5:].isdigit())):
        raise ValueError(f"device {requested!r} is not one of {', '.join(DEVICES)}")
    if not torch.cuda.is_available():
        if requested == "auto":
            return torch.device("cpu")
        raise ValueError(f"device {requested!r} was asked for but CUDA is not available "
                         "(torch.cuda.is_available() is False); use --device cpu or auto")
    if requested.startswith("cuda:"):
        index = int(requested[5:])
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA devices")
        return torch.device("cuda", index)
    return torch.device("cuda", local_rank)


def bf16_is_native(device: torch.device) -> bool:
    """bf16 runs natively on GPUs of compute capability >= 8.0 (Ampere and later); V100 and T4 only emulate it."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for --precision on this device (None: fp32, no autocast).

    "auto": bf16 where the GPU runs it natively, fp16 (with a GradScaler) on older GPUs, fp32 on the CPU (CPU
    bf16 convolutions are slower than fp32 on most machines).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if bf16_is_native(device) else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    """"bf16" | "fp16" | "fp32" for an `amp_dtype` result."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[dtype]


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning for the fixed clip shapes of training and evaluation (a large speed-up for Conv3d)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def local_world_size() -> int:
    """Processes on this machine under torchrun (LOCAL_WORLD_SIZE), 1 otherwise."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def default_workers() -> int:
    """DataLoader workers per process when --workers is not given: this process's share of the CPU cores, one
    left for the process itself, at most 8 (cores // local processes - 1, at least 0)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores // local_world_size() - 1))

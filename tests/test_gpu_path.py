"""The GPU path, as far as a CPU can prove it: resume across devices, precision choice, shared memory, SyncBN,
the device prefetcher; the CUDA cases carry the `gpu` marker and skip without a GPU."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from v3s.shared import runtime
from v3s.shared.checkpoint import load_checkpoint, set_rng_state
from v3s.train.cli import main
from v3s.train.data import DevicePrefetcher, check_shared_memory

GPU = pytest.mark.gpu
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
TINY = ["--width", "0.125", "--clip-len", "8", "--clip-size", "32", "--val-videos", "4", "--batch-size", "4",
        "--workers", "0", "--log-every", "2"]


@pytest.fixture(scope="module")
def store(tiny_ucf_store) -> str:
    return tiny_ucf_store


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_checkpoints_load_to_the_cpu_so_rng_states_restore_on_any_device(store, tmp_path):
    """RNG states must come back as CPU ByteTensors: moved to another device (here "meta", as map_location=cuda
    moves them to the GPU), torch.set_rng_state refuses them, which crashed a GPU --resume."""
    r = run("pretrain", "--store", store, "--dataset", "ucf101", "--out", str(tmp_path / "a"), "--max-steps", "2", *TINY)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    tensors = [ckpt["rng"]["torch"], *ckpt["model"].values()]
    assert all(t.device.type == "cpu" for t in tensors)
    set_rng_state(ckpt["rng"])  # restores
    with pytest.raises(TypeError):
        torch.set_rng_state(ckpt["rng"]["torch"].to("meta"))


def test_bf16_only_where_the_gpu_runs_it_natively(monkeypatch):
    """auto: bf16 from compute capability 8.0 (A100, H100), fp16 with a GradScaler below (V100, T4), fp32 on the CPU."""
    cuda = torch.device("cuda", 0)
    for capability, expected in (((7, 0), torch.float16), ((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                 ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert runtime.amp_dtype("auto", cuda) == expected, capability
    assert runtime.amp_dtype("auto", torch.device("cpu")) is None
    assert runtime.amp_dtype("bf16", cuda) == torch.bfloat16 and runtime.amp_dtype("fp32", cuda) is None
    with pytest.raises(ValueError, match="precision 'fp8'"):
        runtime.amp_dtype("fp8", cuda)


def test_default_workers_share_the_cores_between_local_ranks(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert runtime.default_workers() == 7  # 64 cores / 8 ranks, one left for the rank itself
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert runtime.default_workers() == 8  # at most 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert runtime.default_workers() == 0


def test_shared_memory_too_small_for_the_loaders_is_an_error(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_shared_memory(batch_bytes=1024, workers=2, val_workers=1, shm=str(tmp_path))  # fits
    with pytest.raises(ValueError, match="--shm-size"):
        check_shared_memory(batch_bytes=free, workers=2, val_workers=1, shm=str(tmp_path))
    check_shared_memory(batch_bytes=free, workers=0, val_workers=0, shm=str(tmp_path))  # no workers: no shm


def test_sync_bn_on_needs_a_cuda_ddp_run(store, tmp_path):
    r = CliRunner().invoke(main, ["pretrain", "--store", store, "--dataset", "ucf101", "--out", str(tmp_path / "s"),
                                  "--sync-bn", "on", "--device", "cpu", "--max-steps", "1", *TINY])
    assert r.exit_code == 2 and "--sync-bn on needs a DDP run on CUDA" in r.output, r.output
    assert not (tmp_path / "s" / "last.pt").exists()


def test_prefetcher_is_the_loader_itself_on_the_cpu():
    batches = [torch.arange(3), torch.arange(3, 6)]
    assert list(DevicePrefetcher(batches, torch.device("cpu"))) == batches


@GPU
@NEEDS_CUDA
@pytest.mark.parametrize("first, second", [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_run_killed_on_one_device_resumes_on_the_other(store, tmp_path, first, second):
    """Killed after its step-2 checkpoint on one device, continued on the other: it ends where a run on the first
    device alone ends, within cuDNN's nondeterminism and the devices' different convolution sums (weights agree to
    1e-3 after 8 SGD steps of a width-0.125 network; bitwise equality holds only on one device, tests/test_train.py)."""
    cmd = [sys.executable, "-c", "from v3s.train.cli import main; main()", "pretrain", "--store", store, "--dataset",
           "ucf101", "--epochs", "10", "--max-steps", "8", "--ckpt-every", "2", *TINY]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole"), "--device", first], check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "split"), "--device", first],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "split" / "last.pt"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists() and load_checkpoint(last)["step"] >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = subprocess.run([*cmd, "--out", str(tmp_path / "split"), "--device", second], capture_output=True, text=True)
    assert done.returncode == 0 and "continuing the run from step" in done.stderr, done.stderr[-2000:]
    a, b = load_checkpoint(last), load_checkpoint(tmp_path / "whole" / "last.pt")
    assert a["step"] == b["step"] == 8
    for k, v in a["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, b["model"][k], atol=1e-3, rtol=1e-3, msg=k)


@GPU
@NEEDS_CUDA
def test_prefetcher_copies_ahead_on_a_side_stream():
    from v3s.shared.clips import ClipItem

    items = [ClipItem(torch.full((2, 3, 4, 4, 3), i, dtype=torch.uint8).pin_memory(), torch.eye(3).repeat(2, 1, 1),
                      torch.tensor([[i], [i]]).pin_memory(), torch.tensor([0, 1])) for i in range(3)]
    got = list(DevicePrefetcher(items, torch.device("cuda")))
    assert [int(b.clip[0, 0, 0, 0, 0]) for b in got] == [0, 1, 2]
    assert all(b.clip.is_cuda and b.targets.is_cuda and not b.geometry.is_cuda for b in got)


def test_eval_refuses_to_run_under_torchrun():
    from v3s.pipeline.cli import main as eval_main

    r = CliRunner(env={"WORLD_SIZE": "2"}).invoke(eval_main, ["retrieval", "--random", "--backbone", "r21d"])
    assert r.exit_code == 2 and "without torchrun" in r.output, r.output

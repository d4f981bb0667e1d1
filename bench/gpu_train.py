"""GPU training throughput of V3S pretraining, and the proof that its training step never syncs the host.

Throughput (the default): R(2+1)D at batch 32 on 16x112x112 clips, through the project's own training step
(`v3s.train.loop.train_one_epoch`: device-side V3S warp and normalisation, forward, backward, SGD), in three modes:

    fp32-eager        fp32, no autocast, TF32 OFF for cuDNN and cuBLAS (really fp32; checked numerically below)
    bf16-cl           bf16 autocast + channels_last_3d
    bf16-cl-compile   the same under torch.compile

each fed from two sources: "synthetic" (one real batch read from the store once, kept on the device and fed again
and again: the GPU's ceiling, warp included) and "loader" (the real DataLoader workers decoding the store, through
the DevicePrefetcher, end to end). The loader runs ONE epoch for the whole benchmark: its dataset lists the store's
training videos as many times as the timed steps need (each listing draws its own clips), so the workers start
once and never restart between modes; each loader timing starts only after the batches the workers made ahead
(while a model was built or compiled) are used up. Printed per mode and source: clips/s, the ratio to fp32 eager, MFU, the time
the step waited for data, and the V3S warp's share of the step (the `network_input` call timed with CUDA events
inside the real steps).

MFU = clips/s x counted training FLOPs per clip (torch's FlopCounterMode, forward + backward) / the dense bf16
matmul peak MEASURED IN THIS RUN (an 8192^3 bf16 product timed with CUDA events); the spec-sheet peak is printed
beside it for reference only. fp32 rows use the same bf16 peak (how much of the chip fp32 leaves idle).

Sync check (--sync-check): the same step with the prefetching loader; after a warm-up, a few steps run under
`torch.cuda.set_sync_debug_mode("error")`, which raises on any host-device synchronisation; the op and the line
that synced are reported. Exit status 1 when one did.

    python bench/gpu_train.py --store STORE [--json FILE]        # on a CUDA machine (bench/gpu_check.sh runs it)
    python bench/gpu_train.py --sync-check --store STORE
    python bench/gpu_train.py --dry-run ...                       # CPU, tiny sizes: the same code end to end

Without --store a synthetic store is made first (`v3s-prep synth` + `extract` as library calls: the only part
that needs ffmpeg). On the CPU (--dry-run) CUDA events become wall-clock timers, the peak is an fp32 matmul and
the sync check runs its steps without the debug mode (reported as skipped, with the reason).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import torch

from v3s.shared.checkpoint import build_network
from v3s.shared.clips import ClipItem, PretextClips, pretext_videos
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import LabelSpace
from v3s.shared.runtime import amp_dtype, configure_backends, default_workers
from v3s.shared.spatial import network_input
from v3s.shared.store import Store
from v3s.shared.tasks import PretextTask
from v3s.train import loop
from v3s.train.data import PREFETCH, EpochSampler, check_shared_memory, make_loader
from v3s.train.distributed import DistInfo
from v3s.train.loop import StepContext, train_one_epoch

# name: (precision, channels_last, compile)
MODES = {"fp32-eager": ("fp32", False, False), "bf16-cl": ("bf16", True, False), "bf16-cl-compile": ("bf16", True, True)}
# Dense bf16 tensor-core peaks from the vendors' data sheets (TFLOP/s): printed for reference, never used for MFU.
SPEC_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.0}
# Targets, printed against (benchmarks, not asserts).
TARGETS = {"speedup_vs_fp32": 3.0, "end_to_end_clips_per_s": 1500.0, "mfu": 0.35, "warp_share": 0.05}
# --dry-run: tiny sizes; torch.compile traces the graph (dynamo + AOT autograd) but skips inductor's code
# generation, which on the CPU is C++ rather than the GPU's Triton and costs minutes on 2 cores.
DRY = dict(batch=4, width=0.125, clip_len=8, clip_size=32, steps=3, warmup=2, loader_steps=3, peak_n=512,
           workers=1, sync_steps=2, classes=4, videos_per_class=6, frame_h=48, frame_w=64, compile_backend="aot_eager")


class Meter:
    """Stands in for the progress bar: adds up the time the step waited for its next batch."""

    def __init__(self) -> None:
        self.wait = 0.0

    def waited(self, s: float) -> None:
        self.wait += s

    def advance(self, n: int) -> None:
        pass

    def flush(self, **kw) -> dict:
        return {}


class WarpTimer:
    """The real `network_input`, timed where the training step calls it: CUDA events on a GPU (GPU time between
    the warp's first and last kernel, no host sync), wall clock on the CPU. `installed()` puts it in
    v3s.train.loop for a block; it times the calls made after `start()`."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.cpu_s = 0.0
        self.active = False

    def __call__(self, clips: torch.Tensor, homographies: torch.Tensor, out_size: int) -> torch.Tensor:
        if not self.active:
            return network_input(clips, homographies, out_size)
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            x = network_input(clips, homographies, out_size)
            end.record()
            self.events.append((start, end))
            return x
        t0 = time.perf_counter()
        x = network_input(clips, homographies, out_size)
        self.cpu_s += time.perf_counter() - t0
        return x

    def start(self) -> None:
        self.events, self.cpu_s, self.active = [], 0.0, True

    def seconds(self) -> float:
        """Warp time since `start` (call after a device sync)."""
        return sum(s.elapsed_time(e) for s, e in self.events) / 1e3 if self.cuda else self.cpu_s

    @contextmanager
    def installed(self):
        saved, loop.network_input = loop.network_input, self
        try:
            yield self
        finally:
            loop.network_input, self.active = saved, False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def tf32(allowed: bool):
    """TF32 for cuDNN convolutions and cuBLAS matmuls on or off inside the block (restored after)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def fp32_conv_error(device: torch.device) -> float:
    """Max relative error of an fp32 Conv3d on `device` against float64 on the CPU: about 1e-6 in true fp32, about
    1e-3 under TF32 (10 mantissa bits)."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 32, 8, 28, 28, generator=g), torch.randn(32, 32, 3, 3, 3, generator=g)
    ref = torch.nn.functional.conv3d(x.double(), w.double(), padding=1)
    out = torch.nn.functional.conv3d(x.to(device), w.to(device), padding=1).cpu()
    return float((out.double() - ref).abs().max() / ref.abs().max())


def measured_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> dict:
    """Dense matmul FLOP/s of an n x n x n product in `dtype`, the mean of `reps` after 3 warm-ups (random data)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            a @ b
        end.record()
        end.synchronize()
        seconds, timer = start.elapsed_time(end) / 1e3, "CUDA events"
    else:
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        seconds, timer = time.perf_counter() - t0, "wall clock"
    return {"tflops": 2 * n**3 * reps / seconds / 1e12, "n": n, "dtype": str(dtype).replace("torch.", ""),
            "reps": reps, "timer": timer}


def spec_peak(name: str) -> float | None:
    """The data-sheet dense bf16 peak of a GPU name (longest matching key), None when unknown."""
    hits = [k for k in SPEC_BF16_TFLOPS if k.lower() in name.lower()]
    return SPEC_BF16_TFLOPS[max(hits, key=len)] if hits else None


def run_config(args, space: LabelSpace, store: str) -> PretrainConfig:
    return PretrainConfig(store=store, dataset=args.dataset, out="", width=args.width, clip_len=args.clip_len,
                          clip_size=args.clip_size, label_space=space.to_dict())


def train_flops_per_clip(config: PretrainConfig, task: PretextTask, batch: ClipItem, device: torch.device) -> float:
    """Forward + backward FLOPs of one clip (convolutions and matmuls, as FlopCounterMode counts them), fp32."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_network(config).to(device)
    x = network_input(batch.clip[:2].to(device), batch.geometry[:2], config.clip_size)
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.loss(model(x), batch.targets[:2].to(device))
        loss.backward()
    return counter.get_total_flops() / 2


def make_store(args, root: Path) -> str:
    """A synthetic UCF101-layout store at frame_h x frame_w (the one path that needs ffmpeg)."""
    from v3s.preprocess.extract import ExtractConfig, run_extract
    from v3s.preprocess.synth import SynthConfig, generate

    jobs = max(1, os.cpu_count() or 1)
    generate(SynthConfig(layout="ucf101", classes=args.classes, videos_per_class=args.videos_per_class,
                         size=(args.frame_h + args.frame_h % 2, args.frame_w + args.frame_w % 2), seed=0),
             root / "raw", jobs=jobs)
    run_extract(ExtractConfig(root=str(root / "raw"), dataset=args.dataset, out=str(root / "store"),
                              size=(args.frame_h, args.frame_w), jobs=jobs, quiet=True))
    return str(root / "store")


class Bench:
    """What every measurement shares: the device, the store's training videos, the task and the real loader."""

    def __init__(self, args, store_path: str, device: torch.device, loader_uses: int, steps_per_use: int):
        self.args, self.device = args, device
        self.workers = default_workers() if args.workers is None else args.workers
        # A timing from the loader starts once the batches the workers made ahead (while a model was built or
        # compiled) are used up: with them, a loader-bound step would look faster than it is.
        self.loader_warmup = args.warmup + self.workers * PREFETCH
        self.space = LabelSpace()
        self.config = run_config(args, self.space, store_path)
        self.task = PretextTask(self.space)
        self.store = Store(store_path)
        usable, _ = pretext_videos(self.store, self.config, self.space)
        if len(usable) < args.batch:
            raise SystemExit(f"store {store_path}: {len(usable)} usable training videos of {args.dataset!r} split 1, "
                             f"fewer than one batch of {args.batch}")
        # One epoch long enough for every timed step: the training videos listed `repeat` times, each listing with
        # its own draws (items are keyed by position), so the loader never restarts inside the benchmark.
        loader_items = (loader_uses * (self.loader_warmup + steps_per_use) + PREFETCH) * args.batch
        self.repeat = max(1, math.ceil(loader_items / len(usable)))
        self.dataset = PretextClips(self.store, args.dataset, "1", "train", self.space, clip_len=args.clip_len,
                                    seed=0, videos=usable * self.repeat, clip_size=args.clip_size)
        self.videos, self.frame_hw = len(usable), (usable[0].height, usable[0].width)
        batch_bytes = args.batch * args.clip_len * self.frame_hw[0] * self.frame_hw[1] * 3
        check_shared_memory(batch_bytes, self.workers, 0)
        self.sampler = EpochSampler(len(self.dataset), seed=0, info=DistInfo(0, 1, 0, device))
        self.sampler.set_epoch(0)
        self.loader = make_loader(self.dataset, self.sampler, batch_size=args.batch, workers=self.workers,
                                  device=device, seed=0, drop_last=True)
        self._batches: Iterator[ClipItem] | None = None

    def loader_batches(self) -> Iterator[ClipItem]:
        """The one epoch's iterator (workers start on first use and stay up for the whole benchmark)."""
        if self._batches is None:
            self._batches = iter(self.loader)
        return self._batches

    def fixed_batch(self) -> ClipItem:
        """One real batch (the first `batch` items of the store), clips and targets on the device."""
        items = [self.dataset[(0, i)] for i in range(self.args.batch)]
        clip = torch.stack([it.clip for it in items]).to(self.device)
        return ClipItem(clip, torch.stack([it.geometry for it in items]),
                        torch.stack([it.targets for it in items]).to(self.device),
                        torch.tensor([it.video for it in items]))

    def model(self, precision: str, channels_last: bool, compile_: bool):
        """(model for the step, optimizer, step context, scaler): a fresh R(2+1)D in one setting."""
        torch.manual_seed(0)
        model = build_network(self.config).to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        train_model = torch.compile(model, backend=self.args.compile_backend) if compile_ else model
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        dtype = amp_dtype(precision, self.device)
        ctx = StepContext(device=self.device, amp_dtype=dtype, clip_grad=0.0, seed=0, rank=0, world_size=1,
                          channels_last=channels_last, clip_size=self.args.clip_size)
        scaler = torch.amp.GradScaler(self.device.type, enabled=dtype == torch.float16)
        return train_model, optimizer, ctx, scaler

    def steps(self, parts, batches: Iterator[ClipItem], n: int, meter: Meter, on_step=lambda s: None) -> int:
        """Run up to `n` real training steps (`train_one_epoch`) over `batches`; the number run."""
        train_model, optimizer, ctx, scaler = parts
        # last_step beyond the batches given: the loop ends when they do, without its end-of-run summary (a sync).
        return train_one_epoch(train_model, self.task, itertools.islice(batches, n), optimizer, None, scaler, ctx,
                               step=0, last_step=n + 1, progress=meter, log=lambda s, m: None, log_every=10**9,
                               on_step=on_step)

    def loader_only(self, steps: int) -> dict:
        """clips/s of the loader alone: `steps` batches decoded and copied to the device, after `loader_warmup` (the
        workers' start and the batches they made ahead)."""
        batches = self.loader_batches()
        for _ in itertools.islice(batches, self.loader_warmup):
            pass
        sync(self.device)
        t0 = time.perf_counter()
        n = sum(1 for _ in itertools.islice(batches, steps))
        sync(self.device)
        rate = n * self.args.batch / (time.perf_counter() - t0)
        return {"clips_per_s": rate, "clips_per_s_per_worker": rate / max(self.workers, 1), "batches": n}

    def timed(self, parts, batches: Iterator[ClipItem], warmup: int, steps: int) -> dict:
        """clips/s, data wait and warp share of `steps` steps after `warmup` untimed ones (compilation, autotuning)."""
        timer, meter, mark = WarpTimer(self.device), Meter(), {}

        def on_step(step: int) -> None:
            if step == warmup:  # one sync at the start of the timed steps
                sync(self.device)
                mark["t0"], mark["wait0"] = time.perf_counter(), meter.wait
                timer.start()

        with timer.installed():
            t_start = time.perf_counter()
            done = self.steps(parts, batches, warmup + steps, meter, on_step)
            sync(self.device)
            t_end = time.perf_counter()
        if done != warmup + steps:
            raise RuntimeError(f"the batches ran out after {done} of {warmup + steps} steps")
        dt = t_end - mark["t0"]
        return {"clips_per_s": steps * self.args.batch / dt, "step_ms": 1e3 * dt / steps,
                "data_wait": (meter.wait - mark["wait0"]) / dt, "warp_share": timer.seconds() / dt,
                "warp_ms_per_step": 1e3 * timer.seconds() / steps, "warmup_s": mark["t0"] - t_start,
                "timed_steps": steps, "warmup_steps": warmup}


def throughput(args, bench: Bench, save=lambda partial: None) -> dict:
    """Every mode on both sources; `save` gets the results so far after each row (a stopped run keeps them)."""
    device = bench.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    fixed = bench.fixed_batch()
    flops = train_flops_per_clip(bench.config, bench.task, fixed, device)
    if device.type == "cuda":
        peak = measured_peak(device, torch.bfloat16, args.peak_n)
        with tf32(False):
            fp32_peak = measured_peak(device, torch.float32, args.peak_n)
            err_fp32 = fp32_conv_error(device)
        with tf32(True):
            err_tf32 = fp32_conv_error(device)
    else:
        peak = fp32_peak = measured_peak(device, torch.float32, args.peak_n)  # the CPU has no bf16 tensor cores
        err_fp32 = err_tf32 = fp32_conv_error(device)
    spec = spec_peak(name)
    print(f"device {name}; torch {torch.__version__}; R(2+1)D width {args.width}, batch {args.batch}, "
          f"{args.clip_len}x{args.clip_size}x{args.clip_size} from {bench.frame_hw[0]}x{bench.frame_hw[1]} frames; "
          f"{flops / 1e9:.1f} training GFLOP per clip; torch.compile backend {args.compile_backend}")
    print(f"peak: {peak['dtype']} {peak['n']}^3 matmul {peak['tflops']:.4g} TFLOP/s measured ({peak['timer']}); "
          f"spec sheet {spec or 'unknown'} (reference only); fp32 (TF32 off) matmul {fp32_peak['tflops']:.4g} TFLOP/s")
    print(f"fp32 conv rel. error vs float64: TF32 off {err_fp32:.1e}, TF32 on {err_tf32:.1e}")
    print(f"loader: {bench.workers} workers, {bench.videos} training videos x {bench.repeat} = one epoch of "
          f"{len(bench.dataset)} clips ({bench.sampler.per_epoch() // args.batch} steps)", flush=True)

    loader_only = bench.loader_only(args.loader_steps)
    print(f"loader alone (no training step): {loader_only['clips_per_s']:.1f} clips/s, "
          f"{loader_only['clips_per_s_per_worker']:.1f} per worker", flush=True)
    rows: list[dict] = []
    result = {"device": name, "gflop_per_clip": flops / 1e9, "peak": peak, "fp32_peak": fp32_peak,
              "spec_bf16_tflops": spec, "fp32_conv_rel_error": {"tf32_off": err_fp32, "tf32_on": err_tf32},
              "loader": {"workers": bench.workers, "videos": bench.videos, "repeat": bench.repeat,
                         "epoch_clips": len(bench.dataset), "frame_hw": list(bench.frame_hw), **loader_only},
              "results": rows}
    for mode in [m for m in args.modes.split(",") if m]:
        parts = bench.model(*MODES[mode])
        # fp32 eager is real fp32 (TF32 off); the bf16 modes keep torch's defaults.
        with tf32(False) if MODES[mode][0] == "fp32" else nullcontext():
            for source in ("synthetic", "loader"):
                if source == "synthetic":
                    batches, warmup, steps = itertools.repeat(fixed), args.warmup, args.steps
                else:
                    batches, warmup, steps = bench.loader_batches(), bench.loader_warmup, args.loader_steps
                r = {"mode": mode, "source": source, **bench.timed(parts, batches, warmup, steps)}
                r["mfu"] = r["clips_per_s"] * flops / (peak["tflops"] * 1e12)
                rows.append(r)
                save(result)
                print(f"{source:9s} {mode:16s} {r['clips_per_s']:9.1f} clips/s  MFU {r['mfu']:6.1%}  "
                      f"data wait {r['data_wait']:5.1%}  warp {r['warp_share']:5.1%} ({r['warp_ms_per_step']:.2f} "
                      f"ms/step)  warm-up {r['warmup_s']:.1f} s", flush=True)
        del parts
    base = {r["source"]: r["clips_per_s"] for r in rows if r["mode"] == "fp32-eager"}
    for r in rows:
        r["vs_fp32"] = r["clips_per_s"] / base[r["source"]] if r["source"] in base else None
    return {**result, "targets": against_targets(rows)}


def against_targets(rows: list[dict]) -> list[dict]:
    """Each target with the best measured value it applies to and whether it is met (a benchmark, not an assert)."""
    def best(key: str, source: str | None = None, lower: bool = False) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None and (source is None or r["source"] == source)]
        return (min(vals) if lower else max(vals)) if vals else None

    fastest = max((r for r in rows if r["source"] == "loader"), key=lambda r: r["clips_per_s"], default=None)
    checks = [("speedup_vs_fp32", "best mode vs fp32 eager, loader", best("vs_fp32", "loader"), False),
              ("end_to_end_clips_per_s", "clips/s end to end with the real loader", best("clips_per_s", "loader"), False),
              ("mfu", "MFU, best mode, loader", best("mfu", "loader"), False),
              ("warp_share", "warp share of the fastest loader step",
               fastest["warp_share"] if fastest else None, True)]
    out = []
    for key, what, value, lower in checks:
        target = TARGETS[key]
        met = None if value is None else (value < target if lower else value >= target)
        out.append({"target": key, "what": what, "value": value, "goal": f"{'<' if lower else '>='} {target}", "met": met})
        print(f"target {what}: {value if value is None else round(value, 4)} (goal {'<' if lower else '>='} {target}): "
              f"{'met' if met else 'MISSED' if met is not None else 'n/a'}")
    return out


def sync_check(args, bench: Bench) -> dict:
    """A few real steps under torch.cuda.set_sync_debug_mode("error") after a warm-up, per setting; the op that
    synced, if one did."""
    device = bench.device
    out = {"steps": args.sync_steps, "warmup": args.warmup, "settings": []}
    if device.type != "cuda":
        out.update(status="skipped", reason="no CUDA: torch.cuda.set_sync_debug_mode needs a GPU; the same steps ran "
                                            "on the CPU without it")
    # v3s-train's defaults on a GPU (bf16 autocast, no channels_last, no compile), then with channels_last.
    for setting, channels_last in (("bf16", False), ("bf16-cl", True)):
        parts, batches = bench.model("bf16", channels_last, False), bench.loader_batches()
        bench.steps(parts, batches, args.warmup, Meter())
        sync(device)
        rec = {"setting": setting, "synced": False}
        try:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            rec["steps_run"] = bench.steps(parts, batches, args.sync_steps, Meter())
        except RuntimeError as exc:
            rec.update(synced=True, error=str(exc).splitlines()[0], where=_where(exc))
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
        sync(device)
        out["settings"].append(rec)
        print(f"sync check {setting}: " + (f"SYNCED: {rec['error']} at {rec['where']}" if rec["synced"] else
                                       f"{rec['steps_run']} steps, no host sync" + (
                                           "" if device.type == "cuda" else " (not checked: CPU)")), flush=True)
    if device.type == "cuda":
        out["status"] = "failed" if any(s["synced"] for s in out["settings"]) else "passed"
    return out


def _where(exc: BaseException) -> list[str]:
    """Where a synchronising op was called: the last project frames of the traceback, then the innermost frame
    (inside torch, when the op was called there)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if any(part in f.filename for part in ("v3s", "/bench/", "/train/", "/shared/"))][-4:]
    if frames and (not mine or frames[-1] is not mine[-1]):
        mine.append(frames[-1])
    return [f"{f.filename}:{f.lineno} {f.name}: {f.line}" for f in mine]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (width 0.125, batch 4, 8x32x32, a few "
                                                          "steps): the same code end to end")
    p.add_argument("--sync-check", action="store_true", help="only the no-host-sync check of the training step")
    p.add_argument("--store", default=None, help="a store with a ucf101-layout dataset (default: make one)")
    p.add_argument("--dataset", default="ucf101")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--clip-size", type=int, default=112)
    p.add_argument("--steps", type=int, default=20, help="timed steps per mode, synthetic source")
    p.add_argument("--loader-steps", type=int, default=40, help="timed steps per mode, loader source")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each timing (compilation happens here)")
    p.add_argument("--sync-steps", type=int, default=5, help="steps under the sync debug mode")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers [default: as v3s-train]")
    p.add_argument("--peak-n", type=int, default=8192, help="side of the matmul that measures the peak")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compile mode")
    p.add_argument("--classes", type=int, default=10, help="synthetic store (without --store): classes")
    p.add_argument("--videos-per-class", type=int, default=40)
    p.add_argument("--frame-h", type=int, default=128)
    p.add_argument("--frame-w", type=int, default=171)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    if args.dry_run:
        for k, v in DRY.items():
            setattr(args, k, v)
    bad = [m for m in args.modes.split(",") if m and m not in MODES]
    if bad:
        p.error(f"unknown --modes {bad}; valid: {', '.join(MODES)}")
    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        p.error("no CUDA device (torch.cuda.is_available() is False): run with --dry-run for the CPU check")
    configure_backends(device)

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or make_store(args, Path(tmp))
        # Loader uses: two settings of the sync check, or the loader-only timing and one per mode.
        uses = 2 if args.sync_check else 1 + len([m for m in args.modes.split(",") if m])
        try:
            bench = Bench(args, store, device, uses, args.sync_steps if args.sync_check else args.loader_steps)
        except ValueError as exc:
            raise SystemExit(f"gpu_train: {exc}") from None
        head = {"what": "sync_check" if args.sync_check else "throughput", "dry_run": args.dry_run,
                "args": vars(args), "torch": torch.__version__}

        def save(partial: dict) -> None:
            if args.json:
                Path(args.json).write_text(json.dumps({**head, **partial, "partial": True}, indent=2))

        result = {**head, **(sync_check(args, bench) if args.sync_check else throughput(args, bench, save))}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.sync_check and result.get("status") == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()

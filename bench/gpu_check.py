"""The GPU machine check behind bench/gpu_check.sh: install, environment, a store made with the CLI, the CUDA tests,
the training step's host syncs, the commands end to end, and the throughput benchmark; one JSON, written after
every stage (a run stopped part-way leaves what it measured).

Stages (each recorded with its exit status and wall time; the JSON's sections are named in brackets):
  [environment] GPU, driver, torch / CUDA / cuDNN, CPU cores, /dev/shm, Python, package versions, as found;
  [install]     ffmpeg-python and imageio-ffmpeg from the wheel folder (pip --no-index --target WORK/site), then
                v3s itself (pip --no-deps --no-build-isolation --target WORK/site, or a PYTHONPATH view of the
                v3s namespace where setuptools >= 68 is missing); the image's torch is never touched; ffmpeg is
                imageio-ffmpeg's binary (V3S_FFMPEG);
  [store]       `v3s-prep synth` + `v3s-prep extract` (128x171 on a GPU);
  [pytest]      `python -m pytest -m gpu` (they skip without CUDA);
  [sync_check]  `bench/gpu_train.py --sync-check`: real steps under torch.cuda.set_sync_debug_mode("error");
  [cli]         v3s-train pretrain, SIGKILL after its first mid-run checkpoint, the same command again (it continues
                the run), v3s-train finetune, v3s-eval recognition, retrieval, gradcam;
  [throughput]  `bench/gpu_train.py`: clips/s and MFU per mode, end to end with the real loader, the warp's share.

Exit status 0 when every stage ran as it should (benchmark targets are reported, never failed on), 1 otherwise,
2 for bad arguments. Only the standard library is imported before the install stage.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("environment", "install", "store", "pytest", "sync_check", "cli", "throughput")
SKIPPABLE = ("pytest", "sync_check", "cli", "throughput")
# Distributions whose versions the environment records (the project's dependencies and the test tools).
PACKAGES = ("torch", "numpy", "h5py", "ffmpeg-python", "future", "imageio-ffmpeg", "opencv-python-headless", "joblib",
            "click", "scikit-learn", "scipy", "matplotlib", "pillow", "tqdm", "tensorboard", "pytest", "pytest-xdist",
            "setuptools", "wheel", "pip", "dask")
WHEELS = ("ffmpeg-python", "imageio-ffmpeg")  # what the GPU image lacks (their one dependency, future, comes along)
# Sizes: a GPU run is sized to end within its 480 s budget; --dry-run is the same code at CPU sizes.
# "timeout": the most seconds one command of a stage may run; "budget": the whole check's default --budget.
SIZES = {
    "gpu": dict(classes=10, videos_per_class=40, synth_size="128x172", store_size="128x171", width=0.25, clip_len=16,
                clip_size=112, batch=16, val_videos=16, pretrain_steps=40, ckpt_every=5, finetune_steps=20, clips=2,
                timeout={"install": 120, "store": 120, "pytest": 180, "sync_check": 120, "cli": 90,
                         "throughput": 300}, budget=480),
    "dry": dict(classes=4, videos_per_class=6, synth_size="64x86", store_size="48x64", width=0.125, clip_len=8,
                clip_size=32, batch=4, val_videos=4, pretrain_steps=12, ckpt_every=2, finetune_steps=2, clips=2,
                timeout={"install": 300, "store": 300, "pytest": 600, "sync_check": 600, "cli": 600,
                         "throughput": 1200}, budget=3600),
}
# When the check's --budget runs out (time.monotonic()): commands still running are stopped, later ones not started.
DEADLINE = [float("inf")]


class Report:
    """The JSON report: one section per stage, rewritten (atomically) after each."""

    def __init__(self, path: Path, dry_run: bool):
        self.path = path
        self.data: dict = {"what": "v3s GPU machine check", "dry_run": dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "repo": str(REPO), **{s: {"status": "not run"} for s in SECTIONS}}
        self.t0 = time.perf_counter()
        self.write()

    def set(self, section: str, value: dict) -> None:
        self.data[section] = value
        self.write()

    def write(self) -> None:
        self.data["wall_s"] = round(time.perf_counter() - self.t0, 1)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def banner(text: str) -> None:
    print(f"\n===== {text} =====", flush=True)


def run(name: str, cmd: list[str], env: dict, timeout: float, cwd: Path = REPO, kill_when=None,
        grep: str | None = None) -> dict:
    """Run one command, its output streamed into the log with a `[name]` prefix; a record of how it ended.

    Args:
        timeout: seconds it may run (less where the check's --budget ends sooner); then it and its children get
            SIGKILL.
        kill_when: polled every 50 ms while the command runs; when it returns true the command gets SIGKILL.
        grep: a regex; the output lines that match it are kept in the record's "matched".
    Returns: {"name", "cmd", "rc", "wall_s", "killed", "timed_out", "output_tail"[, "matched"]}; rc is -9 for a
    SIGKILL, None for a command not started because the budget was spent.
    """
    timeout = min(timeout, DEADLINE[0] - time.monotonic())
    if timeout <= 0:
        print(f"[{name}] not started: the check's --budget is spent", flush=True)
        return {"name": name, "cmd": shlex.join(cmd), "rc": None, "wall_s": 0.0, "killed": False, "timed_out": True,
                "output_tail": ["not started: the check's --budget is spent"], **({"matched": []} if grep else {})}
    print(f"$ {shlex.join(cmd)}", flush=True)
    tail: list[str] = []
    matched: list[str] = []
    t0 = time.perf_counter()
    # A session of its own, so that a timeout stops the command's workers too (os.killpg).
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1, start_new_session=True)

    def pump() -> None:
        for line in proc.stdout:
            print(f"[{name}] {line}", end="", flush=True)
            tail.append(line.rstrip("\n"))
            del tail[:-40]
            if grep and re.search(grep, line):
                matched.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    killed = timed_out = False
    try:
        while proc.poll() is None:
            if kill_when is not None and not killed and kill_when():
                proc.send_signal(signal.SIGKILL)  # the process alone, as a crash would end it
                killed = True
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    try:  # what the command left behind (a killed run's DataLoader workers) holds its output open
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    reader.join(timeout=10)
    wall = time.perf_counter() - t0
    print(f"[{name}] exit status {proc.returncode} after {wall:.1f} s" + (" (timed out)" if timed_out else ""),
          flush=True)
    rec = {"name": name, "cmd": shlex.join(cmd), "rc": proc.returncode, "wall_s": round(wall, 2), "killed": killed,
           "timed_out": timed_out, "output_tail": tail[-15:]}
    return {**rec, "matched": matched} if grep else rec


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def environment() -> dict:
    """The machine as found: GPU, driver, torch, CUDA, cuDNN, cores, memory, /dev/shm, Python, packages."""
    import torch

    env: dict = {"python": platform.python_version(), "executable": sys.executable, "platform": platform.platform(),
                 "cpu_cores": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0))}
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    env["cpu_model"] = model.group(1) if model else platform.processor()
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    env["memory_gib"] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    if Path("/dev/shm").is_dir():
        shm = shutil.disk_usage("/dev/shm")
        env["dev_shm"] = {"total_gib": round(shm.total / 2**30, 2), "free_gib": round(shm.free / 2**30, 2)}
    else:
        env["dev_shm"] = None
    env.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               cuda_available=torch.cuda.is_available())
    env["gpus"] = [{"name": torch.cuda.get_device_name(i),
                    "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                    "multiprocessors": torch.cuda.get_device_properties(i).multi_processor_count}
                   for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    env["nvidia_smi"] = first_line(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                    "--format=csv,noheader"])
    env["driver"] = env["nvidia_smi"].split(",")[-1].strip() if env["nvidia_smi"] else None
    env["system_ffmpeg"] = shutil.which("ffmpeg")
    env["packages"] = {d: version(d) for d in PACKAGES}
    print(json.dumps(env, indent=2), flush=True)
    return env


def install(work: Path, wheels: Path, mode: str, env: dict, timeout: float) -> dict:
    """Make v3s (WORK/site) and its missing dependencies (WORK/deps) importable, leaving every installed package
    alone. Two folders: pip --target skips a folder (bin/) that a previous install into the same target made."""
    site, deps = work / "site", work / "deps"
    site.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "pip"]
    rec: dict = {"site": str(site), "deps": str(deps), "wheels": str(wheels), "steps": []}
    missing = [d for d in WHEELS if version(d) is None]
    if wheels.is_dir():
        rec["wheel_files"] = sorted(p.name for p in wheels.glob("*.whl"))
        step = run("pip-wheels", [*py, "install", "--no-index", "--find-links", str(wheels), "--target", str(deps),
                                  "--no-compile", "-q", *WHEELS], env, timeout)
        rec["steps"].append(step)
        if step["rc"] != 0:
            return {**rec, "status": "failed", "reason": f"pip could not install {WHEELS} from {wheels}"}
    elif missing:
        return {**rec, "status": "failed",
                "reason": f"{missing} are not installed and the wheel folder {wheels} does not exist: make it where "
                          "pip reaches PyPI (docs/benchmarks.md, 'The GPU machine check')"}
    else:
        rec["note"] = f"no wheel folder {wheels}; {', '.join(WHEELS)} already installed"
    setuptools = version("setuptools")
    rec["setuptools"] = setuptools
    usable = setuptools is not None and int(setuptools.split(".")[0]) >= 68
    if mode == "pip" and usable:
        # Built from a copy, so that the checkout gets no build/ or egg-info folders.
        src = work / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", ".whl", "out", "build", "dist",
                                                                  "*.egg-info", "__pycache__", ".pytest_cache"))
        step = run("pip-v3s", [*py, "install", "--no-index", "--no-deps", "--no-build-isolation", "--no-compile",
                               "--target", str(site), "-q", str(src)], env, timeout)
        rec["steps"].append(step)
        rec["v3s"] = "pip wheel build into the site folder" if step["rc"] == 0 else None
    if rec.get("v3s") is None:
        why = ("--install view" if mode == "view" else f"setuptools {setuptools} (< 68)" if not usable
               else "pip could not build v3s")
        namespace_view(site)
        rec["v3s"] = f"PYTHONPATH view of the v3s namespace ({why})"
    print(f"install: v3s as {rec['v3s']}", flush=True)
    return rec


def namespace_view(site: Path) -> None:
    """v3s.* as symbolic links to the stage folders (pyproject's package-dir) and its commands as small scripts."""
    text = (REPO / "pyproject.toml").read_text()
    package_dir = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    (site / "v3s").mkdir(exist_ok=True)
    for name, folder in re.findall(r'^"v3s\.(\w+)"\s*=\s*"([^"]+)"', package_dir, re.M):
        link = site / "v3s" / name
        if not link.exists():
            link.symlink_to(REPO / folder, target_is_directory=True)
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    (site / "bin").mkdir(exist_ok=True)
    for command, module, func in re.findall(r'^([\w-]+)\s*=\s*"([\w.]+):(\w+)"', scripts, re.M):
        script = site / "bin" / command
        script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        script.chmod(0o755)


def child_env(work: Path) -> dict:
    """The environment of every command: the install folders first on PYTHONPATH and PATH, a workspace of its own."""
    site, deps = work / "site", work / "deps"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(deps), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(site / "bin"), str(deps / "bin"), env.get("PATH", "")))
    env.update(V3S_WORKSPACE=str(work / "workspace"), PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    return env


def check_install(env: dict, rec: dict, timeout: float) -> dict:
    """Import v3s, ffmpeg-python and imageio-ffmpeg as the commands will; put imageio-ffmpeg's ffmpeg in use."""
    probe = ("import json, ffmpeg, imageio_ffmpeg, torch, v3s.train.cli, v3s.preprocess.cli, v3s.pipeline.cli; "
             "print(json.dumps({'v3s': v3s.train.cli.__file__, 'ffmpeg_python': ffmpeg.__file__, "
             "'imageio_ffmpeg': imageio_ffmpeg.__file__, 'ffmpeg': imageio_ffmpeg.get_ffmpeg_exe(), "
             "'torch': torch.__file__, 'torch_version': torch.__version__}))")
    step = run("import-check", [sys.executable, "-c", probe], env, timeout)
    rec["steps"].append(step)
    if step["rc"] != 0:
        return {**rec, "status": "failed", "reason": "v3s or its ffmpeg packages do not import"}
    found = json.loads(step["output_tail"][-1])
    rec["imports"] = found
    env["V3S_FFMPEG"] = found["ffmpeg"]  # the project's override (shared/video.py ffmpeg_exe): no system ffmpeg
    rec["ffmpeg"] = {"path": found["ffmpeg"], "version": first_line([found["ffmpeg"], "-version"])}
    for tool in ("v3s-prep", "v3s-train", "v3s-eval"):
        rec.setdefault("commands", {})[tool] = shutil.which(tool, path=env["PATH"])
    rec["status"] = "ok" if all(rec["commands"].values()) and rec["ffmpeg"]["version"] else "failed"
    return rec


def make_store(work: Path, env: dict, size: dict, timeout: float) -> dict:
    raw, store = work / "raw", work / "store"
    steps = [run("synth", ["v3s-prep", "synth", str(raw), "--layout", "ucf101", "--classes", str(size["classes"]),
                           "--videos-per-class", str(size["videos_per_class"]), "--size", size["synth_size"]],
                 env, timeout)]
    if steps[-1]["rc"] == 0:
        steps.append(run("extract", ["v3s-prep", "extract", str(raw), "--dataset", "ucf101", "--out", str(store),
                                     "--size", size["store_size"], "--quiet"], env, timeout))
    ok = all(s["rc"] == 0 for s in steps) and len(steps) == 2
    rec = {"status": "ok" if ok else "failed", "path": str(store), "steps": steps}
    if ok:
        info = run("info", ["v3s-prep", "info", str(store)], env, timeout)
        rec["info"] = info["output_tail"]
    return rec


def pytest_gpu(work: Path, env: dict, timeout: float) -> dict:
    junit = work / "pytest-gpu.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    xdist = version("pytest-xdist") is not None and os.cpu_count() and os.cpu_count() >= 8
    if xdist:
        cmd += ["-n", "4", "--dist", "loadfile"]
    step = run("pytest", cmd, env, timeout)
    rec = {**step, "xdist_workers": 4 if xdist else 0}
    if junit.exists():
        suites = ET.parse(junit).getroot()
        suites = [suites] if suites.tag == "testsuite" else list(suites)
        n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
        rec.update(passed=n["tests"] - n["failures"] - n["errors"] - n["skipped"], failed=n["failures"],
                   errors=n["errors"], skipped=n["skipped"])
        rec["not_passed"] = [f"{c.get('classname')}::{c.get('name')}: {child.tag} {(child.get('message') or '')[:200]}"
                             for s in suites for c in s.iter("testcase") for child in c
                             if child.tag in ("failure", "error", "skipped")]
    rec["status"] = "ok" if step["rc"] == 0 and rec.get("failed") == 0 and rec.get("errors") == 0 else "failed"
    return rec


def bench(work: Path, env: dict, store: str, dry_run: bool, sync_check: bool, timeout: float) -> dict:
    out = work / ("sync_check.json" if sync_check else "throughput.json")
    cmd = [sys.executable, str(REPO / "bench" / "gpu_train.py"), "--store", store, "--json", str(out)]
    step = run("sync-check" if sync_check else "throughput", cmd + (["--sync-check"] if sync_check else [])
               + (["--dry-run"] if dry_run else []), env, timeout)
    rec = {"run": step, **(json.loads(out.read_text()) if out.exists() else {})}
    if step["rc"] != 0 or not out.exists():
        rec["status"] = "failed"  # a sync check that found a sync exits 1 with status "failed" in its JSON
    elif not sync_check:
        rec["status"] = "ok"
    return rec


def cli_chain(work: Path, env: dict, store: str, size: dict, timeout: float) -> dict:
    """pretrain -> SIGKILL after its first mid-run checkpoint -> the same command again -> finetune -> evaluations."""
    from v3s.shared.checkpoint import load_checkpoint

    runs = work / "runs"
    data = ["--store", store, "--dataset", "ucf101", "--clip-len", str(size["clip_len"]),
            "--clip-size", str(size["clip_size"]), "--batch-size", str(size["batch"]),
            "--val-videos", str(size["val_videos"])]
    pretrain = ["v3s-train", "pretrain", *data, "--out", str(runs / "pretrain"), "--width", str(size["width"]),
                "--epochs", "1000", "--max-steps", str(size["pretrain_steps"]), "--ckpt-every", str(size["ckpt_every"])]
    last = runs / "pretrain" / "last.pt"
    steps = []

    def ok(step: dict, expected: int = 0) -> bool:
        step.update(expected_rc=expected, ok=step["rc"] == expected)
        steps.append(step)
        return step["ok"]

    if ok(run("pretrain-killed", pretrain, env, timeout, kill_when=last.exists), expected=-signal.SIGKILL):
        step = steps[-1]
        step["killed_at_step"] = load_checkpoint(last)["step"]
        step["ok"] = 0 < step["killed_at_step"] < size["pretrain_steps"]
    else:
        steps[-1]["note"] = "not killed: the run ended before its first checkpoint was seen"
    if ok(run("pretrain-continued", pretrain, env, timeout, grep="continuing the run from step")):
        step = steps[-1]
        step["final_step"] = load_checkpoint(last)["step"]
        step["ok"] = bool(step["matched"]) and step["final_step"] == size["pretrain_steps"]
    finetune = ["v3s-train", "finetune", "--init", str(runs / "pretrain" / "best.pt"), *data, "--out",
                str(runs / "finetune"), "--epochs", "1000", "--max-steps", str(size["finetune_steps"]), "--no-flip"]
    ok(run("finetune", finetune, env, timeout))
    ev = ["--store", store, "--dataset", "ucf101"]
    ok(run("recognition", ["v3s-eval", "recognition", "--ckpt", str(runs / "finetune" / "best.pt"), *ev, "--clips",
                           str(size["clips"]), "--quiet", "--json", "--out", str(runs / "eval-recognition")], env, timeout))
    ok(run("retrieval", ["v3s-eval", "retrieval", "--ckpt", str(runs / "pretrain" / "best.pt"), *ev, "--clips",
                         str(size["clips"]), "--ks", "1,5", "--examples", "2", "--quiet", "--json", "--out",
                         str(runs / "eval-retrieval")], env, timeout))
    ok(run("gradcam", ["v3s-eval", "gradcam", "--ckpt", str(runs / "finetune" / "best.pt"), *ev, "--index", "0",
                       "--json", "--out", str(runs / "eval-gradcam")], env, timeout))
    return {"status": "ok" if all(s["ok"] for s in steps) else "failed", "steps": steps}


def summary(report: dict) -> None:
    banner("summary")
    for section in SECTIONS:
        rec = report[section]
        print(f"{section:12s} {rec.get('status', '?')}" + (f" ({rec['reason']})" if rec.get("reason") else ""))
    p = report["pytest"]
    if "passed" in p:
        print(f"pytest -m gpu: {p['passed']} passed, {p['skipped']} skipped, {p['failed']} failed, {p['errors']} errors")
    for st in report["sync_check"].get("settings", []):
        print(f"  sync check {st['setting']}: " + (f"SYNCED: {st['error']} at {st['where']}" if st["synced"]
                                                 else f"{st['steps_run']} steps without a host sync"))
    for s in report["cli"].get("steps", []):
        print(f"  {s['name']:20s} exit {str(s['rc']):>4} (expected {s['expected_rc']}) {s['wall_s']:7.1f} s  "
              f"{'ok' if s['ok'] else 'FAILED'}")
    tp = report["throughput"]
    if "peak" in tp:
        print(f"  peak {tp['peak']['dtype']} matmul {tp['peak']['tflops']:.4g} TFLOP/s (measured), spec sheet "
              f"{tp['spec_bf16_tflops']}; {tp['gflop_per_clip']:.1f} GFLOP per training clip; loader alone "
              f"{tp['loader']['clips_per_s']:.0f} clips/s with {tp['loader']['workers']} workers")
    for r in tp.get("results", []):
        print(f"  {r['source']:9s} {r['mode']:16s} {r['clips_per_s']:9.1f} clips/s  MFU {r['mfu']:6.1%}  "
              f"warp {r['warp_share']:5.1%}" + (f"  x{r['vs_fp32']:.2f} vs fp32" if r.get("vs_fp32") else ""))
    for t in report["throughput"].get("targets", []):
        value = "n/a" if t["value"] is None else f"{t['value']:.4g}"
        print(f"  target {t['what']}: {value} ({t['goal']}): {'met' if t['met'] else 'MISSED'}")
    print(f"wall time {report['wall_s']:.0f} s; ok: {report['ok']}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json (made by gpu_check.sh)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, every stage for real")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl", help="the wheel folder [default: .whl]")
    p.add_argument("--install", choices=("pip", "view"), default="pip",
                   help="how v3s is made importable: pip (a wheel build into the site folder) or view")
    p.add_argument("--skip", default="", help=f"comma list of stages to leave out: {', '.join(SKIPPABLE)}")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole check; then it stops and reports [default: 480 on a GPU]")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (store, runs, site) and print it")
    args = p.parse_args()
    bad = [s for s in args.skip.split(",") if s and s not in SKIPPABLE]
    if bad:
        p.error(f"--skip {bad}: valid stages are {', '.join(SKIPPABLE)}")
    if not args.out.is_dir():
        p.error(f"--out {args.out} is not a folder")
    size = SIZES["dry" if args.dry_run else "gpu"]
    DEADLINE[0] = time.monotonic() + (args.budget or size["budget"])
    report = Report(args.out / "gpu_check.json", args.dry_run)
    work = Path(tempfile.mkdtemp(prefix="v3s-gpu-check-"))
    print(f"gpu_check: {'dry run (CPU, tiny sizes)' if args.dry_run else 'GPU'}; work folder {work}; report "
          f"{report.path}", flush=True)
    env = child_env(work)
    sys.path[:0] = [str(work / "site"), str(work / "deps")]
    try:
        stages(report, work, env, args, size)
    except BaseException:
        report.data["error"] = traceback.format_exc()  # a bug of this script: the traceback follows in the log
        raise
    finally:
        code = finish(report, work, args.keep_work)
    return code


def stages(report: Report, work: Path, env: dict, args, size: dict) -> None:
    """Every stage in order; a failed install or store ends the check (the later stages need them)."""
    timeout, skip = size["timeout"], [s for s in args.skip.split(",") if s]
    banner("1. environment")
    report.set("environment", {"status": "ok", **environment()})
    banner("install")
    rec = install(work, args.wheels, args.install, env, timeout["install"])
    if rec.get("status") != "failed":
        rec = check_install(env, rec, timeout["install"])
    report.set("install", rec)
    if rec["status"] != "ok":
        return
    banner("2. store (v3s-prep synth + extract)")
    store = make_store(work, env, size, timeout["store"])
    report.set("store", store)
    if store["status"] != "ok":
        return
    for name, title, stage in (
            ("pytest", "3. CUDA tests (pytest -m gpu)", lambda: pytest_gpu(work, env, timeout["pytest"])),
            ("sync_check", "4. training step under torch.cuda.set_sync_debug_mode('error')",
             lambda: bench(work, env, store["path"], args.dry_run, True, timeout["sync_check"])),
            ("cli", "5. commands end to end", lambda: cli_chain(work, env, store["path"], size, timeout["cli"])),
            ("throughput", "6. throughput benchmark (bench/gpu_train.py)",
             lambda: bench(work, env, store["path"], args.dry_run, False, timeout["throughput"]))):
        banner(title)
        report.set(name, {"status": "skipped", "reason": "--skip"} if name in skip else stage())


def finish(report: Report, work: Path, keep: bool) -> int:
    """Write the verdict (every section ok, passed or skipped), print the summary, remove the work folder."""
    report.data["ok"] = "error" not in report.data and all(
        report.data[s].get("status") in ("ok", "passed", "skipped") for s in SECTIONS)
    report.write()
    summary(report.data)
    if keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if report.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The oldest torch release this code can run on: every torch API it calls that is newer than torch 1.13, where.

Prints one row per API of the table below (the first torch release that has it, and the files and lines of this
repository that use it), then, per Python version, the release that the used APIs need next to pyproject.toml's
floor for that Python; exits 1 when a floor is older than what the code needs. The first-release column was read
from torch's own Python sources (a marker per API: a signature, a definition, torch.compile's Python-version
guard); `--torch-src` reads them again from unpacked torch wheels and checks that each marker is absent before its
first release and present from it on:

    python bench/torch_floor.py
    python bench/torch_floor.py --torch-src /tmp/torch-2.2.2 /tmp/torch-2.3.0    # each folder holds torch/version.py
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("shared", "train", "evaluate", "preprocess", "data_manifest", "bench", "tests")
OLDEST_CHECKED = (1, 13)  # the oldest release read; an API already there is listed as "1.13 or older"
PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13), (3, 14))  # requires-python >= 3.10
COMPILE = r"torch\.compile\(|_dynamo\.explain\("
# torch.compile refuses Pythons from the one named in this guard on (e.g. 2.4: "if sys.version_info >= (3, 13)").
GUARD = r"sys\.version_info >= \(3, 1[{}-9]\):\s*raise RuntimeError\(\"(?:Dynamo|torch\.compile) is not supported"


@dataclass(frozen=True)
class Api:
    name: str
    first: tuple[int, int]  # first release that has it (OLDEST_CHECKED: that release or an older one)
    use: str  # regex over this repository's code
    marker_file: str  # file of torch's source tree
    marker: str  # regex that matches there exactly from `first` on
    python: tuple[int, int] = (3, 0)  # the API needs `first` only on this Python version and newer ones


APIS = (
    Api("torch.amp.GradScaler(device, ...)", (2, 3), r"amp\.GradScaler\(",
        "torch/amp/grad_scaler.py", r"class GradScaler"),
    Api("init_process_group(device_id=...)", (2, 3), r"init_process_group\(.*device_id=",
        "torch/distributed/distributed_c10d.py", r"def init_process_group\([^)]*device_id"),
    Api("torch._dynamo.explain(fn)(*args)", (2, 1), r"_dynamo\.explain\(",
        "torch/_dynamo/eval_frame.py", r"def explain\(f\b[^)]*\*extra_args"),
    Api("torch.utils.flop_counter.FlopCounterMode", (2, 1), r"FlopCounterMode\b",
        "torch/utils/flop_counter.py", r"class FlopCounterMode"),
    Api("torch.compile", (2, 0), r"torch\.compile\(",
        "torch/__init__.py", r"\ndef compile\("),
    Api("torch.compile / torch._dynamo on Python 3.12", (2, 4), COMPILE, "torch/__init__.py", GUARD.format(3), (3, 12)),
    Api("torch.compile / torch._dynamo on Python 3.13", (2, 6), COMPILE, "torch/__init__.py", GUARD.format(4), (3, 13)),
    Api("torch.compile / torch._dynamo on Python 3.14", (2, 10), COMPILE, "torch/__init__.py", GUARD.format(5), (3, 14)),
    Api("torch.load(weights_only=...)", OLDEST_CHECKED, r"torch\.load\(.*weights_only",
        "torch/serialization.py", r"def load\([^)]*weights_only"),
    Api("torch.nn.SyncBatchNorm.convert_sync_batchnorm", OLDEST_CHECKED, r"convert_sync_batchnorm\(",
        "torch/nn/modules/batchnorm.py", r"def convert_sync_batchnorm"),
    Api("torch.backends.cudnn.benchmark", OLDEST_CHECKED, r"cudnn\.benchmark",
        "torch/backends/cudnn/__init__.py", r"\bbenchmark\b"),
    Api("torch.backends.cudnn.allow_tf32", OLDEST_CHECKED, r"cudnn\.allow_tf32",
        "torch/backends/cudnn/__init__.py", r"allow_tf32"),
    Api("torch.autocast(device_type, ...)", OLDEST_CHECKED, r"torch\.autocast\(",
        "torch/__init__.py", r"\bautocast\b"),
    Api("torch.channels_last_3d", OLDEST_CHECKED, r"torch\.channels_last_3d",
        "torch/_C/__init__.pyi", r"channels_last_3d"),
    Api("torch.cuda.is_bf16_supported", OLDEST_CHECKED, r"is_bf16_supported\(",
        "torch/cuda/__init__.py", r"def is_bf16_supported"),
    Api("torch.cuda.set_sync_debug_mode", OLDEST_CHECKED, r"set_sync_debug_mode\(",
        "torch/cuda/__init__.py", r"def set_sync_debug_mode"),
    Api("torch.meshgrid(..., indexing=)", OLDEST_CHECKED, r"meshgrid\(.*indexing=",
        "torch/functional.py", r"def meshgrid\(\*tensors, indexing"),
    Api("torch.optim.lr_scheduler.ConstantLR", OLDEST_CHECKED, r"ConstantLR\(",
        "torch/optim/lr_scheduler.py", r"class ConstantLR"),
    Api("torch.isin", OLDEST_CHECKED, r"torch\.isin\(",
        "torch/_C/_VariableFunctions.pyi", r"def isin\("),
    Api("torch.linalg.solve / torch.linalg.inv", OLDEST_CHECKED, r"torch\.linalg\.(?:solve|inv)\(",
        "torch/linalg/__init__.py", r"\nsolve = "),
    Api("torch.utils.data.default_collate", OLDEST_CHECKED, r"default_collate",
        "torch/utils/data/__init__.py", r"default_collate"),
    Api("DataLoader(persistent_workers=, prefetch_factor=)", OLDEST_CHECKED, r"persistent_workers=",
        "torch/utils/data/dataloader.py", r"persistent_workers: bool"),
    Api("torch.testing.assert_close", OLDEST_CHECKED, r"assert_close\(",
        "torch/testing/_comparison.py", r"def assert_close"),
    Api("optimizer.zero_grad(set_to_none=)", OLDEST_CHECKED, r"zero_grad\(set_to_none=",
        "torch/optim/optimizer.py", r"def zero_grad\(self, set_to_none"),
    Api("torch.distributed.run (torchrun)", OLDEST_CHECKED, r"torch\.distributed\.run",
        "torch/distributed/run.py", r"def main\("),
    Api("SummaryWriter(purge_step=)", OLDEST_CHECKED, r"purge_step=",
        "torch/utils/tensorboard/writer.py", r"purge_step"),
)


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a torch version string such as "2.3.1+cpu"."""
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"{version!r} is not a torch version")
    return int(m.group(1)), int(m.group(2))


def shown(first: tuple[int, int]) -> str:
    return f"{first[0]}.{first[1]}" + (" or older" if first == OLDEST_CHECKED else "")


def uses(api: Api) -> list[str]:
    """`path:line` of every line of this repository's code that matches `api.use`."""
    this = Path(__file__).resolve()
    found = []
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.resolve() == this:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(api.use, line) and not line.lstrip().startswith("#"):
                    found.append(f"{path.relative_to(REPO)}:{i}")
    return found


def pyproject_floor(python: tuple[int, int]) -> tuple[int, int]:
    """pyproject.toml's torch floor on `python`: the newest of its "torch>=X,<Y" lines whose marker holds there."""
    lines = re.findall(r'"torch>=([0-9.]+),<[0-9]+(?:; python_version >= \'([0-9.]+)\')?"', (REPO / "pyproject.toml").read_text())
    floors = [release(floor) for floor, py in lines if not py or python >= release(py)]
    if not floors:
        raise ValueError(f"pyproject.toml has no dependency \"torch>=X.Y,<Z\" for Python {python[0]}.{python[1]}")
    return max(floors)


def read_versions(folders: list[Path]) -> list[str]:
    """The torch version of each unpacked torch source folder (its torch/version.py)."""
    versions = []
    for folder in folders:
        vfile = folder / "torch" / "version.py"
        if not vfile.is_file():
            raise ValueError(f"{folder} holds no torch/version.py (expected an unpacked torch wheel)")
        m = re.search(r"__version__ = '([^']+)'", vfile.read_text())
        if not m:
            raise ValueError(f"{vfile} names no __version__")
        versions.append(m.group(1))
    return versions


def check_sources(folders: list[Path], versions: list[str]) -> int:
    """Print, per API, which of the unpacked torch sources have its marker; return the number of contradictions."""
    order = sorted(range(len(folders)), key=lambda i: release(versions[i]))
    print(f"\n{'API':52s} " + " ".join(f"{versions[i]:>8s}" for i in order))
    bad = 0
    for api in APIS:
        cells = []
        for i in order:
            f = folders[i] / api.marker_file
            has = f.is_file() and re.search(api.marker, f.read_text()) is not None
            expected = release(versions[i]) >= api.first
            bad += has != expected and not (has and api.first == OLDEST_CHECKED)
            cells.append(("yes" if has else "-") + ("" if has == expected else "!"))
        print(f"{api.name:52s} " + " ".join(f"{c:>8s}" for c in cells))
    print(f"{bad} contradiction(s) with the first-release column" + (" (marked !)" if bad else ""))
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-src", nargs="+", type=Path, default=[],
                    help="folders of unpacked torch wheels, each holding torch/version.py")
    args = ap.parse_args()
    try:
        return report(args.torch_src)
    except ValueError as e:
        print(f"torch_floor: {e}", file=sys.stderr)
        return 2


def report(torch_src: list[Path]) -> int:
    """Print the API table and the floors per Python; return the exit status (1: a floor is too old)."""
    versions = read_versions(torch_src)
    need = {py: OLDEST_CHECKED for py in PYTHONS}
    print(f"{'API':52s} {'first':>13s}  used at")
    for api in APIS:
        where = uses(api)
        for py in PYTHONS:
            if where and py >= api.python:
                need[py] = max(need[py], api.first)
        more = f" (+{len(where) - 3} more)" if len(where) > 3 else ""
        print(f"{api.name:52s} {shown(api.first):>13s}  {', '.join(where[:3]) + more if where else 'not used'}")
    print(f"\n{'Python':8s} {'code needs':>10s} {'pyproject':>10s}")
    short = []
    for py in PYTHONS:
        floor = pyproject_floor(py)
        print(f"{py[0]}.{py[1]:<6d} {need[py][0]:>7d}.{need[py][1]:<2d} {floor[0]:>7d}.{floor[1]:<2d}")
        if floor < need[py]:
            short.append(f"Python {py[0]}.{py[1]}: pyproject.toml says torch >= {floor[0]}.{floor[1]}, "
                         f"the code needs >= {need[py][0]}.{need[py][1]}")
    bad = check_sources(torch_src, versions) if torch_src else 0
    for line in short:
        print(line, file=sys.stderr)
    return 1 if short or bad else 0


if __name__ == "__main__":
    sys.exit(main())

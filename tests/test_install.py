"""`make install`'s choice of torch (Makefile), read from `make -n install` under a given nvidia-smi and interpreter.

`make -n` runs the Makefile's probes (nvidia-smi, the interpreter's torch, the CPU index) and prints the commands
the install would run, without running them: nothing is downloaded. The GPU cases put a stand-in `nvidia-smi`
that prints a real header first on PATH; the interpreter's torch is a stand-in package with real metadata on
PYTHONPATH (`python -S` keeps this test environment's own torch out of sight).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# The first lines of `nvidia-smi` on a driver that supports CUDA {cuda}.
SMI_HEADER = """Sun Nov 30 01:40:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
"""
SMI_NO_DRIVER = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
UNREACHABLE = "http://127.0.0.1:1/whl"  # port 1: connection refused at once


def torch_floor() -> str:
    """pyproject.toml's torch floor for this Python: the newest of the "torch>=X,<Y" lines whose marker holds."""
    lines = re.findall(r'"torch>=([0-9.]+),<[0-9]+(?:; python_version >= \'([0-9.]+)\')?"', (REPO / "pyproject.toml").read_text())
    version = lambda s: tuple(int(x) for x in s.split("."))
    floors = [floor for floor, py in lines if not py or sys.version_info[:2] >= version(py)]
    assert floors, "pyproject.toml has no torch>=X,<Y dependency for this Python"
    return max(floors, key=version)


def make_plan(tmp_path: Path, *, cuda: str | None = None, host_torch: tuple[str, bool] | None = None,
              index: str = UNREACHABLE, venv_has_torch: bool = False, project: Path = REPO) -> subprocess.CompletedProcess:
    """Run `make -n install` with a stand-in nvidia-smi and interpreter torch; return the finished process.

    Args:
        cuda: the "CUDA Version" that nvidia-smi reports; None: nvidia-smi fails as on a machine without a driver.
        host_torch: (version, CUDA available) of the interpreter's torch; None: it has no torch.
        index: TORCH_INDEX.
        venv_has_torch: the venv exists already and its python sees a torch.
        project: the folder whose pyproject.toml is read (this repository's Makefile runs there).
    """
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    if cuda is None:
        smi.write_text(f"#!/bin/sh\necho \"{SMI_NO_DRIVER}\"\nexit 9\n")
    else:
        smi.write_text("#!/bin/sh\ncat <<'EOF'\n" + SMI_HEADER.format(cuda=cuda) + "EOF\n")
    smi.chmod(0o755)
    site = tmp_path / "site"
    site.mkdir()
    if host_torch is not None:
        version, cuda_ok = host_torch
        (site / "torch").mkdir()
        (site / "torch" / "__init__.py").write_text(
            f"__version__ = {version!r}\n\n\nclass cuda:\n    @staticmethod\n    def is_available():\n        return {cuda_ok}\n")
        dist = site / f"torch-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    venv = tmp_path / "venv"
    if venv_has_torch:  # a python that sees this test environment's torch
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (venv / "bin" / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PY", "VENV", "PYTHONPATH") and not k.startswith("TORCH_")}
    env.update(PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(site))
    return subprocess.run(["make", "-s", "-n", "-f", str(REPO / "Makefile"), "install", f"PY={sys.executable} -S",
                           f"VENV={venv}", f"TORCH_INDEX={index}"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=60)


def torch_installs(out: str) -> list[str]:
    """The pip commands of the plan that install torch itself."""
    return [line for line in out.splitlines() if "pip install" in line and "'torch" in line]


@pytest.mark.parametrize("cuda, build", [("13.0", "cu130"), ("13.1", "cu130"), ("12.9", "cu129"), ("12.8", "cu128"),
                                         ("12.6", "cu126"), ("12.5", "cu124"), ("12.2", "cu121"), ("12.0", "cu118"),
                                         ("11.8", "cu118")])
def test_gpu_without_host_torch_installs_the_newest_build_the_driver_runs(tmp_path, cuda, build):
    r = make_plan(tmp_path, cuda=cuda)
    assert r.returncode == 0, r.stderr
    installs = torch_installs(r.stdout)
    assert len(installs) == 1 and f"--index-url {UNREACHABLE}/{build} 'torch>={torch_floor()},<" in installs[0], r.stdout
    assert "--system-site-packages" not in r.stdout


def test_gpu_with_host_cuda_torch_uses_it_and_pins_it(tmp_path):
    r = make_plan(tmp_path, cuda="13.0", host_torch=("2.11.0+cu130", True))
    assert r.returncode == 0, r.stderr
    assert "-m venv --system-site-packages" in r.stdout, r.stdout
    assert torch_installs(r.stdout) == [], r.stdout
    assert "torch 2.11.0+cu130" in r.stdout
    assert re.search(r"pip install -q -c \S+/torch-constraint.txt -e '\.\[test\]'", r.stdout), r.stdout


@pytest.mark.parametrize("version, cuda_ok, why", [
    ("2.11.0+cu130", False, "its CUDA does not work"),
    ("2.1.0", True, "older than the floor"),
    ("{floor}.0a0+40ec155e58", True, "a pre-release of the floor is older than the floor, as pip compares"),
    ("3.0.0", True, "outside <3"),
])
def test_gpu_with_unusable_host_torch_installs_a_cuda_build(tmp_path, version, cuda_ok, why):
    r = make_plan(tmp_path, cuda="12.6", host_torch=(version.format(floor=torch_floor()), cuda_ok))
    assert r.returncode == 0, r.stderr
    assert "--system-site-packages" not in r.stdout, why
    installs = torch_installs(r.stdout)
    assert len(installs) == 1 and f"{UNREACHABLE}/cu126" in installs[0], (why, r.stdout)


def test_gpu_with_newer_prerelease_host_torch_uses_it(tmp_path):
    r = make_plan(tmp_path, cuda="12.8", host_torch=("2.11.0a0+ecf3bae40a", True))
    assert r.returncode == 0, r.stderr
    assert "--system-site-packages" in r.stdout and torch_installs(r.stdout) == [], r.stdout


def test_driver_too_old_for_every_build_stops_with_a_clear_error(tmp_path):
    r = make_plan(tmp_path, cuda="11.4")
    assert r.returncode != 0
    assert 'nvidia-smi reports CUDA version "11.4"' in r.stderr and "update the NVIDIA driver" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_no_gpu_reachable_cpu_index_installs_the_cpu_build(tmp_path):
    served = tmp_path / "served"
    (served / "whl" / "cpu" / "torch").mkdir(parents=True)
    (served / "whl" / "cpu" / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        index = f"http://127.0.0.1:{server.server_address[1]}/whl"
        r = make_plan(tmp_path, cuda=None, host_torch=("2.11.0+cu130", True), index=index)
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    installs = torch_installs(r.stdout)
    assert len(installs) == 1 and f"--index-url {index}/cpu 'torch>={torch_floor()},<" in installs[0], r.stdout
    assert "--system-site-packages" not in r.stdout, "without a GPU the interpreter's torch is not used"


def test_no_gpu_unreachable_cpu_index_falls_back_to_the_pinned_release(tmp_path):
    r = make_plan(tmp_path, cuda=None)
    assert r.returncode == 0, r.stderr
    installs = torch_installs(r.stdout)
    assert len(installs) == 1 and "--index-url" not in installs[0] and re.search(r"'torch==[0-9.]+'", installs[0])
    assert "does not answer" in r.stdout


@pytest.mark.parametrize("cuda", [None, "13.0"])
def test_venv_with_torch_keeps_it(tmp_path, cuda):
    from importlib.metadata import version

    r = make_plan(tmp_path, cuda=cuda, venv_has_torch=True)
    assert r.returncode == 0, r.stderr
    assert torch_installs(r.stdout) == [], r.stdout
    assert f"has torch {version('torch')}; keeping it" in r.stdout


def test_torch_requirement_is_the_newest_floor_whose_python_marker_holds(tmp_path):
    major, minor = sys.version_info[:2]
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(f"""[project]
dependencies = [
    "torch>=2.3,<3",
    "torch>=2.5,<3; python_version >= '{major}.{minor}'",
    "torch>=2.9,<3; python_version >= '{major}.{minor + 1}'",
    "numpy>=1.24",
]
""")
    r = make_plan(tmp_path, cuda="12.8", project=project)
    assert r.returncode == 0, r.stderr
    installs = torch_installs(r.stdout)
    assert len(installs) == 1 and installs[0].endswith(f"--index-url {UNREACHABLE}/cu128 'torch>=2.5,<3'"), r.stdout


def test_pyproject_without_a_torch_requirement_stops_with_a_clear_error(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\ndependencies = ["numpy>=1.24"]\n')
    r = make_plan(tmp_path, cuda="12.8", project=project)
    assert r.returncode != 0 and 'pyproject.toml has no "torch>=X,<Y" dependency' in r.stderr, r.stderr

"""The house is one-way: stages import only downward, and the commands' --help stays light.

preprocess/, train/ and evaluate/ import only shared/ and data_manifest/ (never each other); shared/ and
data_manifest/ import no stage; pipeline/ (the main job) is the one package allowed to import every stage.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("preprocess", "train", "evaluate", "shared", "data_manifest", "pipeline")
ALLOWED = {
    "data_manifest": {"data_manifest"},
    "shared": {"shared", "data_manifest"},
    "preprocess": {"preprocess", "shared", "data_manifest"},
    "train": {"train", "shared", "data_manifest"},
    "evaluate": {"evaluate", "shared", "data_manifest"},
    "pipeline": set(PACKAGES),
}


def imported_packages(path: Path, package: str) -> set[tuple[str, int]]:
    """(project package, line) of every import in a file (relative imports resolved, lazy ones included)."""
    module = ["v3s", package, *path.relative_to(REPO / package).with_suffix("").parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = module[:len(module) - node.level] if node.level else []
            names = [".".join([*base, node.module] if node.module else base)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "v3s" and len(parts) > 1 and parts[1] in PACKAGES:
                found.add((parts[1], node.lineno))
    return found


def test_stages_import_only_downward():
    bad = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for target, line in sorted(imported_packages(path, package)):
                if target not in ALLOWED[package]:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, "back-edges in the house:\n" + "\n".join(bad)


def test_the_checker_sees_a_back_edge(tmp_path, monkeypatch):
    """The rule above can fail: an evaluate/ file importing train/ (absolute or relative) is reported."""
    fake = tmp_path / "evaluate" / "sub"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("from v3s.train.loop import evaluate\nfrom ...train import runner\nfrom . import y\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imported_packages(fake / "x.py", "evaluate") == {("train", 1), ("train", 2), ("evaluate", 3)}


@pytest.mark.parametrize("command", ["v3s-prep", "v3s-train", "v3s-eval"])
def test_help_loads_no_heavy_library(command):
    """`--help` of every command must not import torch, h5py, scikit-learn or cv2 (it answers instantly)."""
    module = {"v3s-prep": "v3s.preprocess.cli", "v3s-train": "v3s.train.cli", "v3s-eval": "v3s.pipeline.cli"}[command]
    code = ("import sys; from click.testing import CliRunner; import importlib; "
            f"m = importlib.import_module({module!r}); r = CliRunner().invoke(m.main, ['--help']); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(x for x in ('torch', 'h5py', 'sklearn', 'cv2') if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"{command} --help imports {out}"


def test_the_former_spelling_of_the_main_job_still_runs():
    """`python -m v3s.evaluate.demo` (the main job's former home) hands over to v3s.pipeline.demo."""
    r = subprocess.run([sys.executable, "-m", "v3s.evaluate.demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Run the whole V3S pipeline" in r.stdout, r.stdout + r.stderr

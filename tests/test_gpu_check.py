"""bench/gpu_check.sh, the GPU machine check: its --dry-run runs every stage on the CPU (slow), and it never writes
into a folder that already holds something."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"
SECTIONS = ("environment", "install", "store", "pytest", "sync_check", "cli", "throughput")
CLI_STEPS = ["pretrain-killed", "pretrain-continued", "finetune", "recognition", "retrieval", "gradcam"]


def check(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env={**os.environ, "PY": sys.executable}, capture_output=True,
                          text=True, timeout=timeout)


def test_refuses_an_output_folder_that_holds_files(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = check("--dry-run", "--out", str(mine))
    assert r.returncode == 2 and "is not an empty folder" in r.stderr, r.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def test_unknown_stage_to_skip_is_an_error(tmp_path):
    r = check("--skip", "pytest,warp", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--skip ['warp']" in r.stdout and "valid stages are" in r.stdout, r.stdout


@pytest.mark.slow
def test_dry_run_runs_every_stage_and_reports_each(tmp_path):
    out = tmp_path / "out"
    r = check("--dry-run", "--out", str(out), timeout=3600)
    assert r.returncode == 0, r.stdout[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log"]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] and report["ok"]
    assert all(section in report for section in SECTIONS)
    env = report["environment"]
    assert env["python"] and env["torch"] and env["cpu_cores"] >= 1 and "dev_shm" in env and "driver" in env
    assert report["install"]["status"] == "ok" and "v3s" in report["install"]["imports"]["v3s"]
    assert report["install"]["ffmpeg"]["version"].startswith("ffmpeg version")
    assert [s["rc"] for s in report["store"]["steps"]] == [0, 0]
    assert report["pytest"]["rc"] == 0 and report["pytest"]["failed"] == report["pytest"]["errors"] == 0
    assert report["pytest"]["passed"] + report["pytest"]["skipped"] > 0
    sync = report["sync_check"]
    assert sync["status"] == "skipped" and "no CUDA" in sync["reason"]
    assert [s["steps_run"] for s in sync["settings"]] == [sync["steps"]] * 2
    steps = report["cli"]["steps"]
    assert [s["name"] for s in steps] == CLI_STEPS and all(s["ok"] for s in steps)
    assert steps[0]["rc"] == -9 and 0 < steps[0]["killed_at_step"] < steps[1]["final_step"]
    assert all(s["rc"] == 0 for s in steps[1:]) and steps[1]["matched"]
    assert all(s["wall_s"] > 0 for s in steps)
    rows = report["throughput"]["results"]
    assert {(r["mode"], r["source"]) for r in rows} == {(m, s) for m in ("fp32-eager", "bf16-cl", "bf16-cl-compile")
                                                         for s in ("synthetic", "loader")}
    assert all(r["clips_per_s"] > 0 and 0 < r["warp_share"] < 1 and r["mfu"] > 0 for r in rows)
    assert report["throughput"]["peak"]["tflops"] > 0 and len(report["throughput"]["targets"]) == 4
    assert "6. throughput benchmark" in (out / "gpu_check.log").read_text()

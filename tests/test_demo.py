"""The main job end to end at a tiny size: every stage runs, REPORT.md has the table, a rerun reuses everything."""
from __future__ import annotations

import json
import time

import pytest

from v3s.pipeline.demo import DemoConfig, run_demo

TINY = dict(classes=4, videos_per_class=6, aslan_classes=20, aslan_videos_per_class=3, aslan_pairs_per_fold=4,
            synth_size=(48, 64), store_size=(48, 64), width=0.125, clip_len=8, clip_size=32, pretrain_steps=4, pretrain_batch=4,
            pretrain_val_videos=4, train_per_class=2, finetune_steps=3, finetune_batch=4, finetune_val_videos=2,
            seeds=(0,), jobs=2, workers=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    t0 = time.perf_counter()
    results = run_demo(DemoConfig(out=str(out), **TINY), log=lambda line: None)
    return out, results, time.perf_counter() - t0


def test_every_stage_ran_and_the_report_has_the_table(demo):
    out, results, _ = demo
    report = (out / "REPORT.md").read_text()
    for row in ("pretext accuracy, spatial head", "pretext accuracy, temporal head", "finetune top-1, seed 0",
                "retrieval top-1", "kNN top-1", "linear probe top-1", "ASLAN-style accuracy", "## Checks",
                "kNN monitor", "Speediness curve"):
        assert row in report
    assert json.loads((out / "results.json").read_text())["finetune_gain_mean"] == results["finetune_gain_mean"]
    top1 = results["finetune_top1"]
    assert set(top1) == {"v3s", "random"} and all(0 <= v <= 1 for arm in top1.values() for v in arm.values())
    losses = results["finetune_train_loss"]
    assert set(losses) == {"v3s", "random"} and all(0 < v < 10 for arm in losses.values() for v in arm.values())
    assert "training loss at the end" in report
    checks = results["checks"]
    assert checks["n_videos"] == TINY["pretrain_val_videos"] and checks["backbone_tensors"] > 0
    assert -1 <= checks["feature_cosine_vs_random"] <= 1
    for name, path in results["files"].items():
        assert (out / path).is_file() or __import__("pathlib").Path(path).is_file(), name


def test_a_rerun_reuses_finished_work(demo):
    out, first, seconds = demo
    t0 = time.perf_counter()
    again = run_demo(DemoConfig(out=str(out), **TINY), log=lambda line: None)
    rerun = time.perf_counter() - t0
    assert again["finetune_top1"] == first["finetune_top1"] and again["aslan"] == first["aslan"]
    assert again["pretext"]["step"] == TINY["pretrain_steps"]
    # Nothing is decoded, trained or extracted again: a fraction of the first run (generous for noisy machines).
    assert rerun < max(0.5 * seconds, 5.0), (rerun, seconds)


def test_cli_rejects_bad_values_before_running(tmp_path):
    from click.testing import CliRunner

    from v3s.pipeline.cli import demo as main

    out = tmp_path / "never"
    r = CliRunner().invoke(main, ["--out", str(out), "--backbone-lr-mult", "-1"])
    assert r.exit_code == 2 and "--backbone-lr-mult -1.0: must be >= 0" in r.output
    r = CliRunner().invoke(main, ["--out", str(out), "--seeds", "0,x"])
    assert r.exit_code == 2 and "--seeds '0,x'" in r.output
    assert not out.exists()


def test_a_folder_with_another_demo_or_other_files_is_refused(demo, tmp_path):
    out, _, _ = demo
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match="holds a demo run with other settings .*pretrain_steps: 4 there, 5 now"):
        run_demo(DemoConfig(out=str(out), **{**TINY, "pretrain_steps": 5}), log=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not empty and holds no demo run"):
        run_demo(DemoConfig(out=str(tmp_path), **TINY), log=lambda line: None)
    assert (tmp_path / "mine.txt").read_text() == "keep"

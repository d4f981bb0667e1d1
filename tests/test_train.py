"""v3s-train pretrain / finetune on a tiny real store: learning, checkpoints, finetune init, exact resume, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from v3s.shared.checkpoint import load_checkpoint, load_model, save_checkpoint
from v3s.shared.clips import PretextClips
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.shared.labels import label_space_from
from v3s.shared.seeds import seed_for
from v3s.shared.tasks import PretextTask
from v3s.train.cli import main
from v3s.train.loop import StepContext, train_one_epoch

# 4 classes x 6 videos (16 train / 8 test in split 1), frames stored at 48x64; clips of 8 frames at 32x32.
TINY_OPTS = {"--width": "0.125", "--clip-len": "8", "--clip-size": "32", "--val-videos": "4", "--batch-size": "4", "--workers": "0"}


def flat(options: dict[str, str]) -> list[str]:
    return [x for kv in options.items() for x in kv]


TINY = flat(TINY_OPTS)


@pytest.fixture(scope="module")
def store(tiny_ucf_store) -> str:
    return tiny_ucf_store


def cli(*args: str) -> "click.testing.Result":
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory) -> Path:
    """A 6-step pretraining run over 2 epochs (3 steps each)."""
    out = tmp_path_factory.mktemp("pre") / "run"
    r = cli("pretrain", "--store", store, "--dataset", "ucf101", "--out", str(out), "--epochs", "2", "--log-every", "2", *TINY)
    assert r.exit_code == 0, r.output
    return out


def test_pretraining_steps_reduce_loss(store):
    """16 steps on one fixed batch of 8 clips (crops redrawn every step) must fit its transformation labels."""
    from v3s.shared.store import Store

    space = label_space_from("all")
    data = PretextClips(Store(store), "ucf101", "1", "train", space, clip_len=8, seed=0, clip_size=32)
    batch = torch.utils.data.default_collate([data[(0, i)] for i in range(8)])
    config = PretrainConfig(store=store, dataset="ucf101", out="unused", width=0.125, dropout=0.0,
                            label_space=space.to_dict())
    torch.manual_seed(0)
    from v3s.shared.checkpoint import build_network

    model = build_network(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ctx = StepContext(device=torch.device("cpu"), amp_dtype=None, clip_grad=0.0, seed=0, rank=0, world_size=1,
                      channels_last=False, clip_size=32)
    losses: list[float] = []

    class Quiet:
        def waited(self, s): pass
        def advance(self, n): pass
        def flush(self, **kw): return {}

    step = train_one_epoch(model, PretextTask(space), [batch] * 16, optimizer, None,
                           torch.amp.GradScaler("cpu", enabled=False), ctx, step=0, last_step=16, progress=Quiet(),
                           log=lambda s, m: losses.append(m["loss"]), log_every=1, on_step=lambda s: None)
    assert step == 16 and len(losses) == 16
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, (first, last)


def test_pretrain_writes_run_dir_and_checkpoint_format(pretrained):
    for name in ("last.pt", "best.pt", "config.json", "metrics.jsonl", "curves.png"):
        assert (pretrained / name).is_file(), name
    ckpt = load_checkpoint(pretrained / "last.pt", kind="v3s-pretrain")
    for key in ("config", "model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "metrics", "best", "code_version"):
        assert key in ckpt, key
    assert ckpt["format_version"] == 1 and ckpt["step"] == 6 and ckpt["epoch"] == 2
    cfg = ckpt["config"]
    assert (cfg["backbone"], cfg["width"], cfg["clip_len"], cfg["clip_size"], cfg["dataset"], cfg["split"]) == ("r21d", 0.125, 8, 32, "ucf101", "1")
    assert cfg["label_space"]["tp"][0] == [1, 2]
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python", "loader"}
    assert all(k.startswith(("backbone.", "head.")) for k in ckpt["model"])
    assert set(ckpt["metrics"]) == {"loss", "acc_spatial", "acc_temporal"}
    loaded = load_model(pretrained / "last.pt")
    model, config = loaded.model, loaded.config
    assert isinstance(config, PretrainConfig) and config.label_space == cfg["label_space"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
    records = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["phase"] == "val"] == [3, 6]
    train = [r for r in records if r["phase"] == "train"]
    assert train and all({"loss", "acc_spatial", "acc_temporal", "lr", "clips_per_s", "data_wait"} <= set(r) for r in train)
    assert all(0 <= r["data_wait"] <= 1 and r["clips_per_s"] > 0 for r in train)


def _backbone(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if k.startswith("backbone.") and "running" not in k and "num_batches" not in k}


def test_finetune_loads_pretrained_backbone_and_new_head(store, pretrained, tmp_path):
    # lr 0: one step leaves every parameter where initialisation put it, so the checkpoint shows the init.
    common = ["--store", store, "--dataset", "ucf101", "--clip-len", "8", "--clip-size", "32", "--val-videos", "4",
              "--batch-size", "4", "--workers", "0", "--lr", "0", "--max-steps", "1", "--epochs", "1"]
    r = cli("finetune", "--init", str(pretrained / "best.pt"), "--out", str(tmp_path / "ft"), *common)
    assert r.exit_code == 0, r.output
    r = cli("finetune", "--scratch", "--width", "0.125", "--out", str(tmp_path / "scratch"), *common)
    assert r.exit_code == 0, r.output
    pre = load_checkpoint(pretrained / "best.pt")["model"]
    ft = load_checkpoint(tmp_path / "ft" / "last.pt", kind="v3s-finetune")
    scratch = load_checkpoint(tmp_path / "scratch" / "last.pt")["model"]
    assert ft["config"]["backbone"] == "r21d" and ft["config"]["width"] == 0.125 and ft["config"]["n_classes"] == 4
    assert len(ft["config"]["classes"]) == 4
    bb = _backbone(ft["model"])
    assert bb and all(torch.equal(v, pre[k]) for k, v in bb.items())
    assert any(not torch.equal(v, scratch[k]) for k, v in bb.items())
    assert ft["model"]["head.fc.weight"].shape[0] == 4 and not any(k.startswith("head.fc") for k in pre)
    assert torch.equal(ft["model"]["head.fc.weight"], scratch["head.fc.weight"])  # a fresh head, same seed


def _train_cmd(store: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from v3s.train.cli import main; main()", "pretrain", "--store", store,
            "--dataset", "ucf101", "--out", str(out), "--epochs", "10", "--max-steps", "8", "--ckpt-every", "2",
            "--log-every", "4", "--device", "cpu", *flat({**TINY_OPTS, "--workers": "1"}), *extra]


def test_killed_and_resumed_run_ends_with_identical_weights(store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The uninterrupted run goes alongside the one that gets killed.
    log = (tmp_path / "a.log").open("w")
    uninterrupted = subprocess.Popen(_train_cmd(store, tmp_path / "a"), env=env, stdout=log, stderr=log)
    proc = subprocess.Popen(_train_cmd(store, tmp_path / "b"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "b" / "last.pt"
    killed_at = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists():
                killed_at = load_checkpoint(last)["step"]
                if killed_at >= 2:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        assert 2 <= killed_at < 8
        subprocess.run(_train_cmd(store, tmp_path / "b", "--resume"), env=env, check=True, capture_output=True, timeout=300)
        assert uninterrupted.wait(timeout=300) == 0, (tmp_path / "a.log").read_text()[-2000:]
    finally:
        for p in (proc, uninterrupted):
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(last)
    assert a["step"] == b["step"] == 8
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["best"] == b["best"] and a["metrics"] == b["metrics"]


@pytest.fixture
def bad_checkpoints(tmp_path) -> dict[str, Path]:
    save_checkpoint({"kind": "v3s-finetune", "format_version": 1}, tmp_path / "finetune.pt")
    (tmp_path / "corrupt.pt").write_bytes(os.urandom(2048))
    return {"finetune": tmp_path / "finetune.pt", "corrupt": tmp_path / "corrupt.pt"}


@pytest.mark.parametrize("args, message", [
    (["--store", "/nonexistent/store"], "does not exist"),
    (["--dataset", "hmdb51"], "'hmdb51' is not in store"),
    (["--split", "9"], "split '9' is not a split"),
    (["--val-videos", "16"], "too few for 16 validation videos"),
    (["--batch-size", "64"], "--batch-size 64 is larger than the 12 training videos"),
    (["--transforms", "ss,xx"], "['xx'] not understood"),
    (["--epochs", "0"], "--epochs 0 is out of range"),
    (["--canvas", "100"], "--crop 112 is larger than --canvas 100"),
])
def test_pretrain_bad_input_gives_clear_error(store, tmp_path, args, message):
    options = {"--store": store, "--dataset": "ucf101", "--out": str(tmp_path / "run"), **TINY_OPTS}
    options.update(dict(zip(args[::2], args[1::2])))
    r = CliRunner().invoke(main, ["pretrain", *flat(options)])
    assert r.exit_code == 2 and message in r.output, r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
def test_cuda_asked_for_but_absent(store, tmp_path):
    r = CliRunner().invoke(main, ["pretrain", "--store", store, "--dataset", "ucf101", "--out", str(tmp_path / "r"),
                                  "--device", "cuda", *TINY])
    assert r.exit_code == 2 and "CUDA is not available" in r.output, r.output


@pytest.mark.parametrize("which, message", [("finetune", "is a 'v3s-finetune' checkpoint"),
                                            ("corrupt", "cannot be read as a v3s checkpoint"),
                                            ("missing", "does not exist")])
def test_finetune_init_must_be_a_pretraining_checkpoint(store, tmp_path, bad_checkpoints, which, message):
    path = bad_checkpoints.get(which, tmp_path / "missing.pt")
    r = CliRunner().invoke(main, ["finetune", "--init", str(path), "--store", store, "--dataset", "ucf101",
                                  "--out", str(tmp_path / "ft"), "--val-videos", "4"])
    assert r.exit_code == 2 and message in r.output, r.output


def test_a_rerun_continues_its_run_and_other_settings_are_refused(store, pretrained):
    """The same command again says the run is finished (nothing trained); other settings never touch the run."""
    args = ["pretrain", "--store", store, "--dataset", "ucf101", "--out", str(pretrained), "--epochs", "2", *TINY]
    before = {p.name: p.stat().st_mtime_ns for p in pretrained.glob("*.pt")}
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "the run is finished (step 6 of 6)" in r.output, r.output
    assert {p.name: p.stat().st_mtime_ns for p in pretrained.glob("*.pt")} == before
    r = CliRunner().invoke(main, [*args, "--resume", "--lr", "0.5"])
    assert r.exit_code == 2 and "lr: 0.01 there, 0.5 now" in r.output, r.output


def test_the_same_store_spelled_another_way_is_the_same_run(store, pretrained, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(store).parent)
    args = ["pretrain", "--store", Path(store).name, "--dataset", "ucf101", "--out", str(pretrained), "--epochs", "2",
            *TINY]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "the run is finished (step 6 of 6)" in r.output, r.output


def test_config_round_trip_and_unknown_keys():
    c = FinetuneConfig(store="s", dataset="ucf101", out="o", scratch=True, classes=("a", "b"), n_classes=2)
    assert FinetuneConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown PretrainConfig keys \\['bogus'\\]"):
        PretrainConfig.from_dict({**PretrainConfig(store="s", dataset="d", out="o").to_dict(), "bogus": 1})
    assert seed_for(0, 1, 2) != seed_for(0, 2, 1)


def test_transforms_option_accepts_presets_and_family_lists():
    from v3s.shared.labels import PAPER_SS, PAPER_TP, LabelSpace

    assert label_space_from("ss,tp") == LabelSpace(ss=PAPER_SS, sp=(), ts=(), tp=PAPER_TP)
    assert label_space_from("ss, sp, ts, tp") == LabelSpace() == label_space_from("all")
    assert label_space_from("ts+tp") == LabelSpace.preset("ts+tp")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_channels_last_run(store, tmp_path):
    r = cli("pretrain", "--store", store, "--dataset", "ucf101", "--out", str(tmp_path / "gpu"), "--device", "cuda",
            "--channels-last", "--max-steps", "4", "--epochs", "2", *flat({**TINY_OPTS, "--workers": "1"}))
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "gpu" / "last.pt")
    assert ckpt["config"]["precision"] == "auto" and all(torch.isfinite(v.float()).all() for v in ckpt["model"].values())


@pytest.mark.parametrize("args", [[], ["--scratch", "--init", "x.pt"]])
def test_finetune_needs_exactly_one_of_init_and_scratch(store, tmp_path, args):
    r = CliRunner().invoke(main, ["finetune", *args, "--store", store, "--dataset", "ucf101", "--out", str(tmp_path / "ft")])
    assert r.exit_code == 2 and "exactly one of --init" in r.output, r.output


def test_finetune_inherits_the_input_mode_of_its_init(store, tmp_path):
    """A diff-input pretraining run finetunes as diff input; asking for rgb on top of it is an error."""
    pre = tmp_path / "pre-diff"
    r = cli("pretrain", "--store", store, "--dataset", "ucf101", "--out", str(pre), "--max-steps", "2",
            "--input-mode", "diff", *TINY)
    assert r.exit_code == 0, r.output
    ft = tmp_path / "ft"
    r = cli("finetune", "--init", str(pre / "last.pt"), "--store", store, "--dataset", "ucf101", "--out", str(ft),
            "--max-steps", "1", *TINY)
    assert r.exit_code == 0, r.output
    loaded = load_model(ft / "last.pt")
    model, config = loaded.model, loaded.config
    assert config.input_mode == "diff" and model.backbone.input_mode == "diff"
    r = cli("finetune", "--init", str(pre / "last.pt"), "--input-mode", "rgb", "--store", store, "--dataset", "ucf101",
            "--out", str(tmp_path / "bad"), "--max-steps", "1", *TINY)
    assert r.exit_code != 0 and "input_mode" in r.output


def test_scratch_finetune_init_scheme_is_used_stored_and_optional_in_old_checkpoints(store, tmp_path):
    """--init-scheme pytorch builds the scratch backbone with torch's module defaults (lr 0: the checkpoint shows
    the init), the config records it, and a checkpoint written before the option existed still loads (as he)."""
    from v3s.shared.models import build_backbone
    from v3s.train.defaults import resolve_out

    common = ["finetune", "--scratch", "--store", store, "--dataset", "ucf101", "--lr", "0", "--max-steps", "1",
              "--epochs", "1", *TINY]
    for scheme in ("he", "pytorch"):
        r = cli(*common, "--init-scheme", scheme, "--out", str(tmp_path / scheme))
        assert r.exit_code == 0, r.output
    ckpts = {s: load_checkpoint(tmp_path / s / "last.pt") for s in ("he", "pytorch")}
    assert ckpts["pytorch"]["config"]["init_scheme"] == "pytorch" and ckpts["he"]["config"]["init_scheme"] == "he"
    for scheme, ckpt in ckpts.items():
        torch.manual_seed(0)  # the run's --seed
        want = build_backbone("r21d", width=0.125, init_scheme=scheme).state_dict()
        got = _backbone(ckpt["model"])
        assert got and all(torch.equal(v, want[k[len("backbone."):]]) for k, v in got.items()), scheme
    assert any(not torch.equal(v, ckpts["he"]["model"][k]) for k, v in _backbone(ckpts["pytorch"]["model"]).items())
    assert load_model(tmp_path / "pytorch" / "last.pt").config.init_scheme == "pytorch"

    old = ckpts["pytorch"]
    del old["config"]["init_scheme"]
    save_checkpoint(old, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.config.init_scheme == "he"
    assert all(torch.equal(v, old["model"][k]) for k, v in loaded.model.state_dict().items())

    r = cli("finetune", "--init", str(tmp_path / "he" / "last.pt"), "--init-scheme", "pytorch", "--store", store,
            "--dataset", "ucf101", "--out", str(tmp_path / "bad"), *TINY)
    assert r.exit_code == 2 and "--init-scheme pytorch applies with --scratch only" in r.output, r.output
    named = resolve_out(FinetuneConfig(store="s", dataset="ucf101", backbone="r21d", scratch=True,
                                       init_scheme="pytorch"), log=lambda line: None)
    assert Path(named.out).name == "finetune-ucf101-r21d-scratch-pytorch-init"
    assert Path(resolve_out(named.replace(out=None, init_scheme="he"), log=lambda line: None).out).name == \
        "finetune-ucf101-r21d-scratch"


def test_the_representation_monitor_scores_frozen_features_without_training_on_labels(store, tmp_path):
    """Every --monitor-every steps a kNN top-1 of the frozen features is logged (metrics.jsonl, curves.png); it
    leaves the training untouched: the same run without it ends with identical weights."""
    common = ["pretrain", "--store", store, "--dataset", "ucf101", "--epochs", "2", *TINY]
    r = cli(*common, "--out", str(tmp_path / "with"), "--monitor-every", "2", "--monitor-per-class", "2")
    assert r.exit_code == 0 and "monitor: kNN top-1 of 8 test videos against 8 train videos every 2 steps" in r.output
    r = cli(*common, "--out", str(tmp_path / "without"), "--monitor-every", "0")
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in (tmp_path / "with" / "metrics.jsonl").read_text().splitlines()]
    monitored = [r for r in records if r["phase"] == "monitor"]
    assert [r["step"] for r in monitored] == [2, 4, 6] and all(0 <= r["knn_top1"] <= 1 for r in monitored)
    assert not any(r["phase"] == "monitor" for r in map(json.loads, (tmp_path / "without" / "metrics.jsonl").read_text().splitlines()))
    a, b = load_checkpoint(tmp_path / "with" / "last.pt"), load_checkpoint(tmp_path / "without" / "last.pt")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_pretext_noise_is_drawn_for_training_items_only(store):
    from v3s.shared.clips import pretext_datasets
    from v3s.shared.store import Store

    space = label_space_from("all")
    cfg = PretrainConfig(store=store, dataset="ucf101", out="unused", clip_len=8, clip_size=32, val_videos=4,
                         pretext_noise=6.0)
    train, val = pretext_datasets(Store(store), cfg, space)
    levels = [float(train[(0, i)].noise[0]) for i in range(len(train))]
    assert all(0 <= s < 6 for s in levels) and len(set(levels)) == len(levels)
    assert torch.equal(train[(3, 1)].noise, train[(3, 1)].noise)           # drawn from (seed, epoch, position)
    assert all(float(val[i].noise[0]) == 0 for i in range(len(val)))       # validation: never noise
    quiet, _ = pretext_datasets(Store(store), cfg.replace(pretext_noise=0.0), space)
    assert torch.equal(quiet[(0, 0)].clip, train[(0, 0)].clip) and float(quiet[(0, 0)].noise[0]) == 0
    with pytest.raises(ValueError, match="--pretext-noise"):
        PretrainConfig(store=store, dataset="ucf101", out="unused", pretext_noise=-1.0)

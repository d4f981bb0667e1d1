"""`v3s-eval speediness`: the curve's arithmetic on hand-made logits, a checkpoint whose temporal head is pinned to
known logits, and a real 2-step pretrain checkpoint (store entry and the same video as a file, the cache, errors).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from v3s.evaluate.cli import main as eval_main
from v3s.evaluate.speediness import class_speeds, softmax, speediness
from v3s.shared.checkpoint import build_network, config_from_checkpoint, load_checkpoint, load_model, save_checkpoint
from v3s.shared.labels import LabelSpace
from v3s.shared.models import build_backbone
from v3s.shared.models.peers import to_peer_state
from v3s.shared.spatial import eval_batch
from v3s.shared.store import Store
from v3s.shared.temporal import clip_indices
from v3s.train.cli import main as train_main

PAPER = LabelSpace().temporal_classes  # TS 1, 2, 3; TP (1,2) (2,3) (3,4) (4,5) (2,1) (3,2) (4,3) (5,4)


def mean_speed(s1: int, s2: int, clip_len: int) -> float:
    """By hand: the first clip_len // 2 frames at step s1 (clip_len // 2 - 1 steps), the other steps at s2."""
    half = clip_len // 2
    return ((half - 1) * s1 + (clip_len - half) * s2) / (clip_len - 1)


def test_class_speeds_are_the_mean_step():
    speeds = class_speeds(PAPER, 16)
    assert speeds[:3].tolist() == [1.0, 2.0, 3.0]
    assert speeds[3] == pytest.approx((7 * 1 + 8 * 2) / 15) and speeds[-1] == pytest.approx((7 * 5 + 8 * 4) / 15)
    assert class_speeds(PAPER, 8).tolist() == pytest.approx([c.s1 if c.kind == "speed" else mean_speed(c.s1, c.s2, 8)
                                                              for c in PAPER])
    with pytest.raises(ValueError, match="clips of >= 2 frames"):
        class_speeds(PAPER, 1)


def test_curve_arithmetic_on_hand_made_logits():
    big = 60.0  # softmax of a one-hot logit row of this size is one-hot to double precision
    onehot = np.full((4, len(PAPER)), -big)
    onehot[0, 0] = onehot[1, 2] = onehot[2, 3] = onehot[3, 10] = big  # TS(1), TS(3), TP(1,2), TP(5,4)
    r = speediness(softmax(onehot), PAPER, 16)
    assert r["expected_speed"] == pytest.approx([1.0, 3.0, 23 / 15, 67 / 15])
    assert r["p_faster"] == pytest.approx([0.0, 1.0, 1.0, 1.0])
    assert r["p_change"] == pytest.approx([0.0, 0.0, 1.0, 1.0])
    # Uniform over the 11 classes: E[s] is the mean class speed, P(speed > 1) = 10/11, P(change) = 8/11.
    u = speediness(softmax(np.zeros((1, 11))), PAPER, 16)
    want = (1 + 2 + 3 + sum((7 * a + 8 * b) / 15 for a, b in
                            ((1, 2), (2, 3), (3, 4), (4, 5), (2, 1), (3, 2), (4, 3), (5, 4)))) / 11
    assert u["expected_speed"][0] == pytest.approx(want)
    assert u["p_faster"][0] == pytest.approx(10 / 11) and u["p_change"][0] == pytest.approx(8 / 11)
    # Half on TS(1), half on TS(2): E[s] = 1.5, P(speed > 1) = 0.5.
    half = np.log(np.array([[0.5, 0.5, 1e-300]]))
    ts = LabelSpace.preset("ts").temporal_classes
    h = speediness(softmax(half), ts, 16)
    assert h["expected_speed"][0] == pytest.approx(1.5) and h["p_faster"][0] == pytest.approx(0.5)
    assert h["p_change"][0] == 0.0
    # TP alone has no speed-1 class: every clip is "sped up".
    tp = LabelSpace.preset("tp").temporal_classes
    assert speediness(softmax(np.random.default_rng(0).normal(size=(5, 8))), tp, 16)["p_faster"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"probs must be \(N, 11\)"):
        speediness(np.ones((2, 3)), PAPER, 16)


# ---- through the command -------------------------------------------------------------------------------------

TRAIN = ["--clip-len", "8", "--clip-size", "32", "--max-steps", "2", "--batch-size", "4", "--workers", "0",
         "--val-videos", "2", "--width", "0.25", "--backbone", "r3d"]


def invoke(cli, args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def speed_json(args) -> dict:
    return json.loads(invoke(eval_main, ["speediness", *args, "--workers", 0, "--quiet", "--json"]).stdout)


@pytest.fixture(scope="module")
def pretrained(tiny_ucf_store, tmp_path_factory):
    """(store, pretrain checkpoint, finetune checkpoint) of 2 steps each, made with v3s-train."""
    root = tmp_path_factory.mktemp("speediness")
    data = ["--store", tiny_ucf_store, "--dataset", "ucf101"]
    invoke(train_main, ["pretrain", *data, *TRAIN, "--out", root / "pt"])
    invoke(train_main, ["finetune", "--init", root / "pt" / "best.pt", *data, *TRAIN[:-4], "--out", root / "ft"])
    return tiny_ucf_store, root / "pt" / "best.pt", root / "ft" / "best.pt"


def pinned(pt: Path, path: Path, probs: np.ndarray, space: LabelSpace | None = None) -> Path:
    """A copy of a pretrain checkpoint whose temporal head outputs log(probs) whatever the clip."""
    ckpt = load_checkpoint(pt)
    if space is not None:
        cfg = config_from_checkpoint(ckpt).replace(label_space=space.to_dict())
        ckpt["config"], ckpt["model"] = cfg.to_dict(), build_network(cfg).state_dict()
    ckpt["model"]["head.temporal.weight"].zero_()
    ckpt["model"]["head.temporal.bias"].copy_(torch.log(torch.as_tensor(probs, dtype=torch.float32)))
    save_checkpoint(ckpt, path)
    return path


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_pinned_temporal_head_gives_the_hand_computed_curve(pretrained, tmp_path):
    store, pt, _ = pretrained
    probs = np.array([0.4, 0.1, 0.05, 0.2, 0.05, 0.05, 0.05, 0.02, 0.03, 0.03, 0.02])
    ckpt = pinned(pt, tmp_path / "pinned.pt", probs)
    r = speed_json(["--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--index", 3, "--stride", 3])
    speeds = [1, 2, 3] + [mean_speed(a, b, 8) for a, b in ((1, 2), (2, 3), (3, 4), (4, 5), (2, 1), (3, 2), (4, 3), (5, 4))]
    expected = float(np.dot(probs, speeds))
    n = r["protocol"]["n_clips"]
    starts = list(range(0, r["source"]["num_frames"] - 8 + 1, 3))
    assert r["protocol"]["stride"] == 3 and n == len(starts) and r["curve"]["start_frame"] == starts
    assert r["curve"]["expected_speed"] == pytest.approx([expected] * n, abs=1e-6)
    assert r["curve"]["p_faster"] == pytest.approx([0.6] * n, abs=1e-6)
    assert r["curve"]["p_change"] == pytest.approx([0.45] * n, abs=1e-6)
    rows = read_csv(r["files"]["csv"])
    assert len(rows) == n and rows[0]["start_frame"] == "0" and float(rows[0]["centre_frame"]) == 3.5
    assert float(rows[1]["time_s"]) == pytest.approx(6.5 / r["source"]["fps"], abs=1e-4)
    assert [float(rows[-1][f"p_{c}"]) for c in ("TS1", "TS2", "TS3", "TP1-2", "TP5-4")] == \
        pytest.approx([0.4, 0.1, 0.05, 0.2, 0.02], abs=1e-6)
    assert r["notes"] == []

    # TP alone: no speed-1 class, so P(speed > 1) is 1 and a note says so.
    tp = LabelSpace.preset("tp")
    only_tp = pinned(pt, tmp_path / "tp.pt", np.full(8, 1 / 8), space=tp)
    t = speed_json(["--ckpt", only_tp, "--store", store, "--dataset", "ucf101", "--index", 0])
    assert t["summary"]["p_faster"] == {"mean": pytest.approx(1.0), "min": pytest.approx(1.0),
                                        "max": pytest.approx(1.0)}
    assert any("no speed-1 class" in note for note in t["notes"])


def test_speediness_end_to_end(pretrained, tmp_path):
    store_path, pt, _ = pretrained
    r = speed_json(["--ckpt", pt, "--store", store_path, "--dataset", "ucf101", "--index", 1,
                    "--cache-dir", tmp_path / "cache", "--out", tmp_path / "a"])
    assert r["task"] == "speediness" and r["head"] == "temporal" and r["model"]["kind"] == "v3s-pretrain"
    assert r["protocol"]["clip_len"] == 8 and r["protocol"]["stride"] == 4 and r["features"]["cache_hit"] is False
    assert [c["name"] for c in r["classes"]] == [c.name for c in PAPER]
    # Each row is the softmax of the model on that plain clip, centre-cropped (checked on two clips).
    loaded, store = load_model(pt), Store(store_path)
    video = store.videos("ucf101")[1]
    rows = read_csv(r["files"]["csv"])
    for i in (0, len(rows) - 1):
        frames = store.read_frames(video.key, clip_indices(video.num_frames, int(rows[i]["start_frame"]), 8))
        with torch.no_grad():
            p = torch.softmax(loaded.model(eval_batch(torch.from_numpy(frames)[None], 32))[1][0].double(), 0)
        assert [float(rows[i][f"p_{c.name.replace('(', '').replace(')', '').replace(',', '-')}"]) for c in PAPER] == \
            pytest.approx(p.tolist(), abs=2e-6)
    png = Image.open(r["files"]["curve"])
    assert png.format == "PNG" and png.size[0] > 400
    assert json.loads(Path(r["files"]["results"]).read_text())["curve"] == r["curve"]

    # A rerun reads the clip logits from the feature cache; the same video as a file gives the same curve.
    again = speed_json(["--ckpt", pt, "--store", store_path, "--dataset", "ucf101", "--key", video.rel_path,
                        "--cache-dir", tmp_path / "cache", "--out", tmp_path / "b"])
    assert again["features"]["cache_hit"] is True and again["curve"] == r["curve"]
    source = Path(store_path).parent / "raw" / video.rel_path
    f = speed_json(["--ckpt", pt, "--video", source, "--out", tmp_path / "c"])
    assert f["source"]["size"] == [48, 64] and f["features"] is None
    for name in ("expected_speed", "p_faster", "p_change"):
        assert f["curve"][name] == pytest.approx(r["curve"][name], abs=1e-5)
    table = invoke(eval_main, ["speediness", "--ckpt", pt, "--video", source, "--out", tmp_path / "c"]).stdout
    assert "E[speed]" in table and "P(speed > 1)" in table


def test_speediness_errors(pretrained, tmp_path):
    store, pt, ft = pretrained
    flat = pinned(pt, tmp_path / "flat.pt", np.ones(1), space=LabelSpace(ts=(), tp=()))
    peer = tmp_path / "peer.pth"
    torch.save(to_peer_state(build_backbone("r3d", width=0.25).state_dict(), "r3d", "vcop"), peer)
    at = ["--store", store, "--dataset", "ucf101"]
    cases = [
        (["--ckpt", ft, *at, "--index", 0], "is a finetune checkpoint: its head classifies actions"),
        (["--ckpt", flat, *at, "--index", 0], "pretrained without temporal transformations"),
        (["--ckpt", peer, *at, "--index", 0], "this one needs a v3s checkpoint"),
        (["--ckpt", pt, *at, "--index", 99], "--index 99 is out of range"),
        (["--ckpt", pt, *at, "--key", "nope.avi"], "'nope.avi' is not an ok video"),
        (["--ckpt", pt, *at], "exactly one of --key KEY / --index I"),
        (["--ckpt", pt, *at, "--index", 0, "--video", pt], "either --video FILE or --store"),
        (["--ckpt", pt, "--video", tmp_path / "none.avi"], "does not exist"),
        (["--ckpt", pt, "--video", pt], "does not decode"),
        (["--ckpt", pt, *at, "--index", 0, "--stride", 0], "--stride 0 is out of range"),
        (["--ckpt", pt, *at, "--index", 0, "--thumbs", 0], "--thumbs 0 is out of range"),
        (["--ckpt", pt, "--video", Path(store).parent / "raw" / Store(store).videos("ucf101")[0].rel_path,
          "--size", "24x24"], "larger than the decoded frames (24x24)"),
    ]
    for args, message in cases:
        result = invoke(eval_main, ["speediness", *args, "--out", tmp_path / "o", "--workers", 0, "--quiet"], code=2)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)

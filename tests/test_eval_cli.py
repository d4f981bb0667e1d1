"""End-to-end `v3s-eval`: recognition, retrieval (checkpoint and --random), ASLAN, Grad-CAM, and the errors.

Tiny synthetic stores (UCF101 layout, and ASLAN layout for the similarity test) and 2-step checkpoints (r3d,
width 0.25, 8x32x32 clips) are built once per module through the real CLIs.
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

from v3s.data_manifest import read_pairs
from v3s.evaluate.cli import main as eval_main
from v3s.evaluate.gradcam import grad_cam
from v3s.shared.metrics.retrieval import l2_normalize_rows
from v3s.evaluate.aslan import aslan_from_features, save_video_features
from v3s.preprocess.cli import main as prep_main
from v3s.shared.checkpoint import build_network, config_from_checkpoint, load_checkpoint, save_checkpoint
from v3s.shared.models import ClassifierHead, VideoModel, build_backbone
from v3s.train.cli import main as train_main

# --init takes the backbone and width from the pretrain checkpoint, so finetuning gets no --width.
TRAIN = ["--clip-len", "8", "--clip-size", "32", "--max-steps", "2", "--batch-size", "4", "--workers", "0",
         "--val-videos", "2"]


def invoke(cli, args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def run_json(args) -> dict:
    return json.loads(invoke(eval_main, [*args, "--workers", 0, "--quiet", "--json"]).stdout)


def check_image(path: str, fmt: str) -> Image.Image:
    img = Image.open(path)
    img.verify()  # raises on a truncated or corrupt file
    img = Image.open(path)
    assert img.format == fmt and img.size[0] > 16 and img.size[1] > 16
    return img


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """(root, store, finetune checkpoint, pretrain checkpoint) built with the real CLIs."""
    root = tmp_path_factory.mktemp("eval_cli")
    invoke(prep_main, ["synth", root / "src", "--layout", "ucf101", "--classes", 4, "--videos-per-class", 3,
                       "--size", "64x86", "--jobs", 1])
    invoke(prep_main, ["extract", root / "src", "--dataset", "ucf101", "--out", root / "store", "--size", "64x86",
                       "--jobs", 1, "--quiet"])
    data = ["--store", root / "store", "--dataset", "ucf101", *TRAIN]
    invoke(train_main, ["pretrain", "--backbone", "r3d", "--width", "0.25", *data, "--out", root / "pt"])
    invoke(train_main, ["finetune", "--init", root / "pt" / "best.pt", *data, "--out", root / "ft"])
    return root, root / "store", root / "ft" / "best.pt", root / "pt" / "best.pt"


@pytest.fixture(scope="module")
def aslan_store(tmp_path_factory):
    """(pairs.csv, store) of a tiny ASLAN-layout synthetic set (20 classes x 3 videos, 4 pairs per fold)."""
    root = tmp_path_factory.mktemp("eval_aslan")
    invoke(prep_main, ["synth", root / "src", "--layout", "aslan", "--classes", 20, "--videos-per-class", 3,
                       "--size", "64x86", "--pairs-per-fold", 4, "--jobs", 1])
    invoke(prep_main, ["extract", root / "src", "--dataset", "aslan", "--out", root / "store", "--size", "64x86",
                       "--jobs", 1, "--quiet"])
    return root / "src" / "pairs.csv", root / "store"


# ---- recognition ---------------------------------------------------------------------------------------------


def test_recognition_end_to_end(ucf, tmp_path):
    _, store, ft, _ = ucf
    r = run_json(["recognition", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--clips", 3,
                  "--out", tmp_path])
    assert r["n_videos"] == 4 and r["n_clips"] == 12 and r["n_classes"] == 4
    assert r["protocol"] == {"mode": "linspace", "clip_len": 8, "crop": 32, "n_clips": 3, "average": "prob",
                             "role": "test"}
    for level in ("clip", "video"):
        assert 0.0 <= r[level]["top1"] <= 1.0
        assert r[level]["top5"] is None  # 4 classes: top-5 would be trivially 1
    assert any("top-5" in n for n in r["notes"])
    assert set(r["per_class"]) == {"TranslateDown", "TranslateLeft", "TranslateRight", "TranslateUp"}
    cm = np.array(r["confusion_matrix"])
    assert cm.sum() == 4 and np.trace(cm) / 4 == pytest.approx(r["video"]["top1"])
    with open(r["files"]["predictions"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert np.mean([row["label"] == row["predicted"] for row in rows]) == pytest.approx(r["video"]["top1"])
    check_image(r["files"]["confusion"], "PNG")
    written = json.loads(Path(r["files"]["results"]).read_text())
    assert written["video"] == r["video"]
    table = invoke(eval_main, ["recognition", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--clips", 3,
                               "--out", tmp_path, "--workers", 0, "--quiet"]).stdout
    assert "top-1" in table and "video" in table


# ---- retrieval -----------------------------------------------------------------------------------------------


def brute_force_topk(q, ql, g, gl, k):
    sims = l2_normalize_rows(q) @ l2_normalize_rows(g).T
    hits = [any(gl[j] == ql[i] for j in np.argsort(-sims[i], kind="stable")[:k]) for i in range(len(q))]
    return float(np.mean(hits))


def test_retrieval_pretrain_checkpoint_matches_brute_force(ucf, tmp_path):
    _, store, _, pt = ucf
    r = run_json(["retrieval", "--ckpt", pt, "--store", store, "--dataset", "ucf101", "--clips", 3,
                  "--out", tmp_path])
    assert r["n_queries"] == 4 and r["n_gallery"] == 8 and r["layer"] == "conv5"
    assert list(r["topk"]) == ["1", "5"] and r["dropped_ks"] == [10, 20, 50] and len(r["notes"]) == 3
    assert 0 <= r["topk"]["1"] <= r["topk"]["5"] <= 1
    feats = {role: np.load(f["path"]) for role, f in r["features"].items()}
    q, g = feats["test"], feats["train"]
    for k in (1, 5):
        want = brute_force_topk(q["video/conv5"], q["labels"], g["video/conv5"], g["labels"], k)
        assert r["topk"][str(k)] == pytest.approx(want)
    check_image(r["files"]["topk"], "PNG")
    check_image(r["files"]["examples"], "PNG")


def test_retrieval_random_baseline_is_seeded_and_cached(ucf, tmp_path):
    _, store, _, _ = ucf
    base = ["retrieval", "--random", "--backbone", "r3d", "--width", "0.25", "--clip-len", 8, "--clip-size", 32,
            "--store", store, "--dataset", "ucf101", "--clips", 2, "--layer", "pool", "--ks", "1,2,4,100",
            "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out"]
    a = run_json([*base, "--seed", 1])
    assert a["model"]["kind"] == "random" and a["dropped_ks"] == [100] and list(a["topk"]) == ["1", "2", "4"]
    b = run_json([*base, "--seed", 1, "--ks", "1"])
    assert all(f["cache_hit"] for f in b["features"].values()) and b["topk"]["1"] == a["topk"]["1"]
    c = run_json([*base, "--seed", 2])
    assert not any(f["cache_hit"] for f in c["features"].values())
    assert c["features"]["test"]["path"] != a["features"]["test"]["path"]
    check_image(a["files"]["examples"], "PNG")


def test_retrieval_accepts_a_finetune_checkpoint(ucf, tmp_path):
    _, store, ft, _ = ucf
    r = run_json(["retrieval", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--clips", 2, "--layer", "pool",
                  "--out", tmp_path])
    assert r["model"]["kind"] == "v3s-finetune" and r["feature_dim"] == 128


# ---- ASLAN ---------------------------------------------------------------------------------------------------


def test_aslan_end_to_end_and_from_features(ucf, aslan_store, tmp_path):
    pairs, store = aslan_store
    pt = ucf[3]
    base = ["aslan", "--ckpt", pt, "--store", store, "--pairs", pairs, "--stride", 48, "--out", tmp_path / "a"]
    r = run_json(base)
    assert r["n_pairs"] == 40 and r["n_folds"] == 10 and r["pair_feature_dim"] == 36
    assert r["layers"] == ["pool3", "pool4", "pool5"] and r["protocol"]["stride"] == 48
    assert 0 <= r["accuracy_mean"] <= 1 and r["accuracy_std_error"] >= 0 and 0 <= r["auc"] <= 1
    assert len(r["fold_accuracies"]) == 10 and r["features"]["cache_hit"] is False
    check_image(r["files"]["roc"], "PNG")
    # Changing only the SVM's C reuses the features.
    r2 = run_json([*base, "--C", 0.1])
    assert r2["features"]["cache_hit"] is True and r2["C"] == 0.1
    # The written per-video features give the same result through --features (any model's features).
    r3 = run_json(["aslan", "--features", r["files"]["video_features"], "--pairs", pairs, "--out", tmp_path / "f"])
    assert r3["accuracy_mean"] == r["accuracy_mean"] and r3["auc"] == r["auc"]


def test_aslan_random_init_baseline_is_seeded_and_cached(aslan_store, tmp_path):
    pairs, store = aslan_store
    base = ["aslan", "--random", "--backbone", "r3d", "--width", 0.25, "--clip-len", 8, "--clip-size", 32,
            "--store", store, "--pairs", pairs, "--stride", 48, "--cache-dir", tmp_path / "cache"]
    r = run_json([*base, "--out", tmp_path / "a"])
    assert r["model"]["kind"] == "random" and r["pair_feature_dim"] == 36 and r["features"]["cache_hit"] is False
    again = run_json([*base, "--out", tmp_path / "b"])
    assert again["features"]["cache_hit"] is True and again["accuracy_mean"] == r["accuracy_mean"]
    other = run_json([*base, "--seed", 1, "--out", tmp_path / "c"])
    assert other["features"]["cache_hit"] is False
    result = invoke(eval_main, ["aslan", "--random", "--backbone", "r3d", "--features", r["files"]["video_features"],
                                "--pairs", pairs, "--out", tmp_path / "d"], code=2)
    assert "exactly one" in result.output


def test_aslan_protocol_separates_similar_from_dissimilar_pairs(aslan_store, tmp_path):
    """On features where a video resembles its class, the fold-wise SVM (never trained on the test fold's
    classes) labels unseen pairs well above chance; on pure noise it stays near chance."""
    pairs = read_pairs(aslan_store[0])
    action = {}
    for p in pairs:
        action[p.first], action[p.second] = p.first_action, p.second_action
    ids = sorted(action)
    rng = np.random.default_rng(0)
    centres = rng.random((max(action.values()) + 1, 64))
    feats = {"a": np.stack([centres[action[s]] + 0.05 * rng.random(64) for s in ids]),
             "b": np.stack([centres[action[s]] ** 2 + 0.05 * rng.random(64) for s in ids])}
    result, x = aslan_from_features(feats, ids, pairs)
    assert x.shape == (40, 24) and result.mean >= 0.9 and result.auc >= 0.9
    noise = {"a": rng.random((len(ids), 64))}
    assert aslan_from_features(noise, ids, pairs)[0].mean < 0.8
    # The same through the CLI's --features file, with integer ids and a layer subset.
    path = save_video_features(tmp_path / "f.npz", feats, [int(s) for s in ids])
    r = run_json(["aslan", "--features", path, "--pairs", aslan_store[0], "--layers", "a", "--out", tmp_path])
    assert r["layers"] == ["a"] and r["pair_feature_dim"] == 12 and r["accuracy_mean"] >= 0.9


# ---- Grad-CAM ------------------------------------------------------------------------------------------------


def test_grad_cam_equals_cam_for_a_pooled_linear_head():
    """With global average pooling and a linear head, Grad-CAM reduces to CAM: ReLU(sum_c w_c A_c)."""
    torch.manual_seed(0)
    backbone = build_backbone("r3d", width=0.125)
    model = VideoModel(backbone, ClassifierHead(backbone.feature_dim, 3)).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    cam, out = grad_cam(model, x, backbone.stages["conv5"], lambda o: o[0, 2])
    with torch.no_grad():
        a = x
        for stage in backbone.stages.values():
            a = stage(a)
        manual = torch.relu(torch.einsum("c,bcthw->bthw", model.head.fc.weight[2], a))[:, None]
        manual = torch.nn.functional.interpolate(manual, size=(8, 32, 32), mode="trilinear", align_corners=False)[0, 0]
    assert cam.shape == (8, 32, 32) and out.shape == (1, 3)
    if manual.max() > 0:
        np.testing.assert_allclose(cam, (manual / manual.max()).numpy(), atol=1e-5)
        assert cam.max() == pytest.approx(1.0)


def test_gradcam_end_to_end(ucf, tmp_path):
    root, store, ft, pt = ucf
    r = json.loads(invoke(eval_main, ["gradcam", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--index", 1,
                                      "--out", tmp_path / "a", "--json"]).stdout)
    assert r["head"] == "classifier" and r["target"]["chosen_by"] == "predicted"
    assert r["target"]["class_id"] == r["predicted"]["class_id"] and 0 < r["target"]["probability"] <= 1
    assert len(r["source"]["frames"]) == 8 and r["cam_shape"] == [8, 32, 32]
    cam = np.load(r["files"]["cam"])
    assert cam.shape == (8, 32, 32) and cam.min() >= 0 and cam.max() <= 1
    check_image(r["files"]["strip"], "PNG")
    gif = check_image(r["files"]["gif"], "GIF")
    assert gif.n_frames == 8

    given = json.loads(invoke(eval_main, ["gradcam", "--ckpt", ft, "--store", store, "--dataset", "ucf101",
                                          "--key", r["source"]["video"], "--target", 3, "--start", 0,
                                          "--out", tmp_path / "b", "--json"]).stdout)
    assert given["target"]["class_id"] == 3 and given["target"]["chosen_by"] == "given"
    assert given["source"]["frames"] == list(range(8))

    video = next((root / "src").rglob("*.avi"))
    from_file = json.loads(invoke(eval_main, ["gradcam", "--ckpt", pt, "--video", video, "--target", "temporal",
                                              "--out", tmp_path / "c", "--json"]).stdout)
    assert from_file["head"] == "temporal" and from_file["source"]["size"] == [64, 86]
    check_image(from_file["files"]["gif"], "GIF")


# ---- errors --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_ckpts(ucf, tmp_path_factory):
    """Checkpoints that do not fit: wrong backbone in the config, and a 5-class classifier."""
    _, _, ft, _ = ucf
    d = tmp_path_factory.mktemp("bad")
    c = load_checkpoint(ft)
    c["config"] = {**c["config"], "backbone": "r21d"}
    save_checkpoint(c, d / "wrong_backbone.pt")
    c = load_checkpoint(ft)
    cfg = config_from_checkpoint(c).replace(n_classes=5, classes=None)
    c["config"], c["model"] = cfg.to_dict(), build_network(cfg).state_dict()
    save_checkpoint(c, d / "five_classes.pt")
    return d


def error_cases(ucf, bad, aslan_pairs_missing):
    _, store, ft, pt = ucf
    rec = ["recognition", "--store", store, "--dataset", "ucf101"]
    return [
        ([*rec, "--ckpt", bad / "wrong_backbone.pt"], "weights do not load into a 'r21d'"),
        ([*rec, "--ckpt", bad / "five_classes.pt"], "classifies 5 classes but dataset 'ucf101' in the store has 4"),
        (["recognition", "--store", store, "--dataset", "hmdb51", "--ckpt", ft], "dataset 'hmdb51' is not in store"),
        ([*rec, "--ckpt", ft, "--split", "9"], "split '9' is not a split of 'ucf101'"),
        ([*rec, "--ckpt", pt], "'v3s-pretrain' checkpoint; recognition needs a finetuned one"),
        (["retrieval", "--ckpt", pt, "--random", "--backbone", "r3d", "--store", store, "--dataset", "ucf101"],
         "exactly one of --ckpt"),
        (["retrieval", "--ckpt", pt, "--width", "0.5", "--store", store, "--dataset", "ucf101"],
         "--width 0.5 contradicts"),
        (["aslan", "--ckpt", pt, "--store", store, "--dataset", "ucf101", "--pairs", aslan_pairs_missing],
         "not ok videos of 'ucf101'"),
        (["gradcam", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--index", 0, "--target", "spatial"],
         "--target spatial needs a pretrain checkpoint"),
        (["gradcam", "--ckpt", ft, "--store", store, "--dataset", "ucf101", "--index", 99], "--index 99 is out of range"),
    ]


def test_clear_errors(ucf, bad_ckpts, aslan_store, tmp_path):
    missing_pairs = tmp_path / "pairs.csv"
    missing_pairs.write_text("fold,first,second,same,first_action,second_action\n1,0001,0999,0,1,2\n2,0002,0003,1,2,2\n")
    for args, message in error_cases(ucf, bad_ckpts, missing_pairs):
        result = invoke(eval_main, [*args, "--out", tmp_path / "o"] if args[0] == "gradcam" else
                        [*args, "--out", tmp_path / "o", "--quiet", "--workers", 0], code=2)
        assert message in result.output, (args, result.output)
    # ASLAN pairs naming samples the store lacks, and a features file lacking a sample.
    pairs, astore = aslan_store
    result = invoke(eval_main, ["aslan", "--ckpt", ucf[3], "--store", astore, "--pairs", missing_pairs,
                                "--quiet", "--out", tmp_path / "o"], code=2)
    assert "0999 (absent)" in result.output
    npz = save_video_features(tmp_path / "few.npz", {"pool5": np.ones((2, 4))}, ["0001", "0002"])
    result = invoke(eval_main, ["aslan", "--features", npz, "--pairs", pairs, "--out", tmp_path / "o"], code=2)
    assert "have no row in" in result.output

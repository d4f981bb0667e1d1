"""End-to-end `v3s-eval knn`, `linear` and `embed` on frozen features: results, the shared feature cache, raw-video
folders, --random with both init schemes, and the errors.

The session's tiny synthetic UCF101-layout store (4 classes x 6 videos in 3 recording groups; split 1: 16 train
videos in groups g02 and g03, 8 test videos in g01) and a 2-step r3d pretraining checkpoint (width 0.25, 8x32x32
clips) built through the real CLIs; 2 clips per video.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from v3s.evaluate import features as F
from v3s.evaluate.cli import main as eval_main
from v3s.shared.metrics.retrieval import cosine_similarity
from v3s.train.cli import main as train_main

CLIPS = ["--clips", 2, "--workers", 0, "--quiet"]


def invoke(cli, args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def run_json(args, code: int = 0) -> dict:
    return json.loads(invoke(eval_main, [*args, *CLIPS, "--json"], code).stdout)


def check_png(path: str) -> None:
    img = Image.open(path)
    img.verify()
    assert Image.open(path).size[0] > 100


@pytest.fixture(scope="module")
def setup(tiny_ucf_store, tmp_path_factory):
    """(store, pretrain checkpoint, the raw videos the store was extracted from)."""
    root = tmp_path_factory.mktemp("eval_frozen")
    invoke(train_main, ["pretrain", "--backbone", "r3d", "--width", "0.25", "--store", tiny_ucf_store, "--dataset",
                        "ucf101", "--clip-len", 8, "--clip-size", 32, "--max-steps", 2, "--batch-size", 4,
                        "--workers", 0, "--val-videos", 2, "--out", root / "pt"])
    return Path(tiny_ucf_store), root / "pt" / "best.pt", Path(tiny_ucf_store).parent / "raw"


def weighted_votes(q, g, gl, n_classes, k, t, exclude=None):
    """Per query, from the definition: k most cosine-similar rows (not in `exclude[i]`), votes exp(s / T)."""
    sims = cosine_similarity(q, g)
    preds = []
    for i in range(len(q)):
        order = [j for j in np.argsort(-sims[i], kind="stable") if exclude is None or j not in exclude[i]][:k]
        totals = np.zeros(n_classes)
        for j in order:
            totals[gl[j]] += math.exp(sims[i, j] / t)
        preds.append(int(np.argmax(totals)))
    return np.array(preds)


def test_knn_reuses_retrievals_features_and_matches_the_definition(setup, tmp_path):
    store, ckpt, _ = setup
    data = ["--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--cache-dir", tmp_path / "cache"]
    first = run_json(["retrieval", *data, "--layer", "pool", "--ks", 1, "--out", tmp_path / "r"])
    assert not any(f["cache_hit"] for f in first["features"].values())
    before = F.EXTRACTIONS
    r = run_json(["knn", *data, "--out", tmp_path / "k"])
    # Same layer and clips as retrieval: its cache entries serve, the model does not run.
    assert F.EXTRACTIONS == before
    assert r["features"] == first["features"] | {role: {**f, "cache_hit": True} for role, f in first["features"].items()}
    assert r["n_train"] == 16 and r["n_test"] == 8 and r["n_classes"] == 4 and r["layer"] == "pool"
    assert list(r["topk"]) == ["1", "5"] and r["dropped_ks"] == [20] and "k=20 dropped" in r["notes"][0]
    assert r["protocol"]["groups"] == "recording group (gXX in the file name)"

    train, test = (np.load(first["features"][role]["path"]) for role in ("train", "test"))
    for k in (1, 5):
        pred = weighted_votes(test["video/pool"], train["video/pool"], train["labels"], 4, k, 0.07)
        assert r["topk"][str(k)]["top1"] == pytest.approx(np.mean(pred == test["labels"]))
        assert r["topk"][str(k)]["top5"] is None
        # Leave-one-group-out on the train list: the video's own recording group (gXX) does not vote.
        groups = [key.split("_")[-2] for key in train["keys"]]
        own = [{j for j, h in enumerate(groups) if h == g} for g in groups]
        loo = weighted_votes(train["video/pool"], train["video/pool"], train["labels"], 4, k, 0.07, own)
        assert r["train_loo_top1"][str(k)] == pytest.approx(np.mean(loo == train["labels"]))
    best = r["k"]
    assert r["top1"] == r["topk"][str(best)]["top1"]
    assert r["train_loo_top1"][str(best)] == max(r["train_loo_top1"].values())
    check_png(r["files"]["knn"])
    assert json.loads(Path(r["files"]["results"]).read_text())["top1"] == r["top1"]
    table = invoke(eval_main, ["knn", *data, "--out", tmp_path / "k", *CLIPS]).stdout
    assert "test top-1" in table and f"at k={best}" in table


def test_linear_cross_validates_on_the_train_list_and_reuses_the_cache(setup, tmp_path):
    store, ckpt, _ = setup
    data = ["--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--cache-dir", tmp_path / "cache"]
    run_json(["knn", *data, "--ks", 1, "--out", tmp_path / "k"])
    before = F.EXTRACTIONS
    r = run_json(["linear", *data, "--folds", 2, "--cs", "0.01,1,100", "--out", tmp_path / "l"])
    assert F.EXTRACTIONS == before and all(f["cache_hit"] for f in r["features"].values())
    assert r["cv"]["cs"] == [0.01, 1.0, 100.0] and r["C"] in r["cv"]["cs"]
    per_fold = np.array(r["cv"]["per_fold"])
    assert per_fold.shape == (3, 2) and r["cv"]["fold_sizes"] == [8, 8]  # one recording group per fold
    np.testing.assert_allclose(r["cv"]["mean"], per_fold.mean(axis=1))
    assert r["cv"]["mean"][r["cv"]["cs"].index(r["C"])] == max(r["cv"]["mean"])
    assert 0 <= r["top1"] <= 1 and r["top5"] is None and r["protocol"]["folds"] == 2
    assert r["protocol"]["fold_groups"] == "recording group (gXX in the file name)"
    check_png(r["files"]["cv"])
    table = invoke(eval_main, ["linear", *data, "--folds", 2, "--cs", "0.01,1,100", "--out", tmp_path / "l",
                               *CLIPS]).stdout
    assert "CV top-1" in table and "test top-1" in table


def test_embed_store_and_folder_give_the_same_features_and_never_overwrite(setup, tmp_path):
    store, ckpt, raw = setup
    base = ["embed", "--ckpt", ckpt, "--cache-dir", tmp_path / "cache"]
    s = run_json([*base, "--store", store, "--dataset", "ucf101", "--out", tmp_path / "store.npz"])
    z = np.load(tmp_path / "store.npz")
    assert s["n_videos"] == 24 and z["features"].shape == (24, 128) and z["features"].dtype == np.float32
    assert z["ids"][0].startswith("ucf101/") and sorted(set(z["labels"].tolist())) == [0, 1, 2, 3]
    assert json.loads(str(z["meta"]))["clips"] == {"mode": "linspace", "clip_len": 8, "crop": 32, "n_clips": 2}

    # A folder of raw videos, with one that does not decode and a file that is not a video.
    folder = tmp_path / "videos"
    shutil.copytree(raw / "TranslateUp", folder / "up")
    shutil.copy(next((raw / "TranslateDown").glob("*.avi")), folder / "down.avi")
    (folder / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    (folder / "notes.txt").write_text("not a video")
    result = invoke(eval_main, [*base, "--root", folder, "--out", tmp_path / "folder.npz", *CLIPS, "--json"], code=1)
    assert "1 video did not decode and is not in" in result.stderr and "broken.mp4" in result.stderr
    f = json.loads(result.stdout)
    assert [x["video"] for x in f["failed"]] == ["broken.mp4"] and f["source"]["size"] == [48, 64]  # the store's
    y = np.load(tmp_path / "folder.npz")
    assert y["ids"].tolist() == ["down.avi"] + [f"up/{p.name}" for p in sorted((raw / "TranslateUp").glob("*.avi"))]
    assert (y["labels"] == -1).all()
    # Decoded as v3s-prep extract decodes: the features equal those of the same videos read from the store.
    row = {key.split("/", 2)[2]: i for i, key in enumerate(z["ids"])}
    down = next((raw / "TranslateDown").glob("*.avi")).name
    for i, rel in enumerate(y["ids"]):
        np.testing.assert_allclose(y["features"][i], z["features"][row[down if rel == "down.avi" else rel[3:]]],
                                   rtol=1e-5, atol=1e-6)

    # Reruns: refused without --force (the file is untouched); with --force served from the cache.
    stamp = (tmp_path / "store.npz").stat().st_mtime_ns
    refused = invoke(eval_main, [*base, "--store", store, "--dataset", "ucf101", "--out", tmp_path / "store.npz",
                                 *CLIPS], code=2)
    assert "already exists; pass --force" in refused.output and (tmp_path / "store.npz").stat().st_mtime_ns == stamp
    before = F.EXTRACTIONS
    again = run_json([*base, "--store", store, "--dataset", "ucf101", "--out", tmp_path / "store.npz", "--force"])
    assert again["features"]["cache_hit"] and F.EXTRACTIONS == before
    assert np.array_equal(np.load(tmp_path / "store.npz")["features"], z["features"])
    folder_again = invoke(eval_main, [*base, "--root", folder, "--out", tmp_path / "folder.npz", "--force", *CLIPS,
                                      "--json"], code=1)
    assert json.loads(folder_again.stdout)["features"]["cache_hit"] and F.EXTRACTIONS == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left
    check_table = invoke(eval_main, [*base, "--store", store, "--dataset", "ucf101", "--out", tmp_path / "t.npz",
                                     *CLIPS]).stdout
    assert "embed  24 videos of ucf101 in" in check_table


def test_random_baselines_with_both_init_schemes(setup, tmp_path):
    store, _, _ = setup
    base = ["knn", "--random", "--backbone", "r3d", "--width", 0.25, "--clip-len", 8, "--clip-size", 32, "--store",
            store, "--dataset", "ucf101", "--ks", 1, "--cache-dir", tmp_path / "cache"]
    he = run_json([*base, "--out", tmp_path / "he"])
    pt = run_json([*base, "--init-scheme", "pytorch", "--out", tmp_path / "pt"])
    assert he["model"]["init_scheme"] == "he" and pt["model"]["init_scheme"] == "pytorch"
    assert "init_scheme" not in he["model"]["random"] and pt["model"]["random"]["init_scheme"] == "pytorch"
    assert not pt["features"]["train"]["cache_hit"] and pt["features"]["train"]["path"] != he["features"]["train"]["path"]
    a, b = (np.load(r["features"]["train"]["path"])["video/pool"] for r in (he, pt))
    assert not np.allclose(a, b)
    again = run_json([*base, "--init-scheme", "pytorch", "--out", tmp_path / "pt"])
    assert all(f["cache_hit"] for f in again["features"].values()) and again["top1"] == pt["top1"]
    # Without --out, the two schemes' results go to two folders.
    default = run_json([*base, "--init-scheme", "pytorch"])
    assert Path(default["files"]["results"]).parent.parent.parent.name == "r3d-w0.25-rgb-seed0-pytorch-init"


def test_clear_errors_before_any_extraction(setup, tmp_path):
    store, ckpt, raw = setup
    data = ["--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--cache-dir", tmp_path / "cache",
            "--out", tmp_path / "o"]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.avi").write_bytes(b"junk")
    embed = ["embed", "--ckpt", ckpt, "--cache-dir", tmp_path / "cache"]
    cases = [
        (["knn", *data, "--ks", "0,5"], "--ks must be integers >= 1, got [0, 5]"),
        (["knn", *data, "--temperature", 0], "--temperature 0.0 is out of range: it must be a number > 0"),
        (["knn", *data, "--temperature", -0.5], "--temperature -0.5 is out of range"),
        (["knn", *data, "--ks", 20], "every k in [20] is larger than the gallery (16 train videos)"),
        (["knn", *data, "--ks", 9], "no k in [9] can be chosen on the train list: a train video has only 8"),
        (["knn", *data, "--layer", "pool5"], "Invalid value for '--layer'"),
        (["linear", *data, "--folds", 9], "4 classes have fewer train videos than --folds 9"),
        (["linear", *data, "--folds", 3], "the train list has 2 video groups, fewer than --folds 3"),
        (["linear", *data, "--folds", 1], "--folds 1 is out of range: cross-validation needs >= 2 folds"),
        (["linear", *data, "--cs", "0,1"], "--cs must be numbers > 0"),
        (["linear", *data, "--cs", "a,b"], "--cs 'a,b' is not a comma-separated list of numbers"),
        (["linear", *data, "--max-iter", 0], "--max-iter 0 is out of range"),
        (["knn", *data, "--init-scheme", "pytorch"], "--init-scheme pytorch applies with --random only"),
        ([*embed, "--root", empty, "--out", tmp_path / "e.npz"], "holds no videos: no file below it ends in"),
        ([*embed, "--root", only_bad, "--out", tmp_path / "e.npz"], "no video below --root"),
        ([*embed, "--root", tmp_path / "nowhere", "--out", tmp_path / "e.npz"], "does not exist"),
        ([*embed, "--root", raw, "--store", store, "--out", tmp_path / "e.npz"], "not both"),
        ([*embed, "--store", store, "--size", "32x32", "--out", tmp_path / "e.npz"], "--size applies with --root only"),
        ([*embed, "--store", store, "--out", tmp_path], "is a folder; give the .npz file to write"),
        ([*embed, "--store", store, "--dataset", "hmdb51", "--out", tmp_path / "e.npz"], "dataset 'hmdb51' is not in"),
    ]
    before = F.EXTRACTIONS
    for args, message in cases:
        result = invoke(eval_main, [*args, *CLIPS], code=2)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert F.EXTRACTIONS == before and not (tmp_path / "e.npz").exists()

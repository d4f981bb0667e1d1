"""Feature extraction and its cache: clip selection, per-video means, cache reuse and invalidation.

A tiny synthetic UCF101-layout store and a 2-step finetuned r3d (width 0.25, 8x32x32 clips) are built once per
module through the real CLIs (v3s-prep synth / extract, v3s-train finetune).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from v3s.evaluate import cache as C
from v3s.evaluate import features as F
from v3s.evaluate.cli import main as eval_main
from v3s.shared.metrics.recognition import mean_over_clips
from v3s.preprocess.cli import main as prep_main
from v3s.shared.checkpoint import load_checkpoint, load_model, save_checkpoint
from v3s.shared.clips import EvalClips
from v3s.shared.store import Store
from v3s.train.cli import main as train_main

TINY = ["--width", "0.25", "--clip-len", "8", "--clip-size", "32", "--max-steps", "2", "--batch-size", "4",
        "--workers", "0", "--val-videos", "2"]


def invoke(cli, args: list[str]):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(store path, finetune checkpoint path) built with the real CLIs."""
    root = tmp_path_factory.mktemp("eval_features")
    invoke(prep_main, ["synth", root / "src", "--layout", "ucf101", "--classes", 4, "--videos-per-class", 3,
                       "--size", "64x86", "--jobs", 1])
    invoke(prep_main, ["extract", root / "src", "--dataset", "ucf101", "--out", root / "store", "--size", "64x86",
                       "--jobs", 1, "--quiet"])
    invoke(train_main, ["finetune", "--scratch", "--backbone", "r3d", "--store", root / "store", "--dataset",
                        "ucf101", "--out", root / "ft", *TINY])
    return root / "store", root / "ft" / "best.pt"


def recognition_json(ckpt: Path, store: Path, *extra) -> dict:
    out = invoke(eval_main, ["recognition", "--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--clips", 3,
                             "--workers", 0, "--quiet", "--json", *extra])
    return json.loads(out.stdout)


def test_strided_clip_starts():
    assert F.strided_clip_starts(40, 16, 8).tolist() == [0, 8, 16, 24]
    assert F.strided_clip_starts(39, 16, 8).tolist() == [0, 8, 16]  # 24 + 16 > 39: the tail is not read
    assert F.strided_clip_starts(16, 16, 8).tolist() == [0]
    assert F.strided_clip_starts(5, 16, 8).tolist() == [0]  # short video: one clip (last frame repeated)
    with pytest.raises(ValueError, match="stride"):
        F.strided_clip_starts(40, 16, 0)


def test_clip_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="clip mode 'random'"):
        F.ClipSpec("random")
    with pytest.raises(ValueError, match="crop"):
        F.ClipSpec(crop=0)


def test_linspace_clips_equal_the_training_eval_clips(tiny):
    """The evaluation reads exactly the clips of v3s.shared.clips.EvalClips (the fine-tuning validation protocol)."""
    store = Store(tiny[0])
    videos = store.videos("ucf101", "1", "test")
    ours = F.clip_dataset(store, videos, F.ClipSpec("linspace", clip_len=8, crop=32, n_clips=3))
    theirs = EvalClips(store, "ucf101", "1", "test", n_clips=3, clip_len=8)
    assert len(ours) == len(theirs) == 3 * len(videos)
    for i in range(len(ours)):
        (a, va), (b, vb) = (ours[i].clip, ours[i].video), (theirs[i].clip, theirs[i].video)
        assert va == vb and torch.equal(a, b)
    # With a frame step too (a checkpoint finetuned with --frame-step is evaluated on the same clips).
    ours = F.clip_dataset(store, videos, F.ClipSpec("linspace", clip_len=8, crop=32, n_clips=3, frame_step=2))
    theirs = EvalClips(store, "ucf101", "1", "test", n_clips=3, clip_len=8, frame_step=2)
    for i in range(len(ours)):
        assert torch.equal(ours[i].clip, theirs[i].clip)


def test_frame_step_is_in_the_cache_key_only_when_used():
    """Caches written before --frame-step existed keep their keys; another step never reuses them."""
    plain = F.ClipSpec("linspace", clip_len=8, crop=32, n_clips=3)
    assert plain.key() == {"mode": "linspace", "clip_len": 8, "crop": 32, "n_clips": 3}
    assert F.ClipSpec("linspace", clip_len=8, crop=32, n_clips=3, frame_step=2).key() == {**plain.key(), "frame_step": 2}
    assert F.ClipSpec("stride", clip_len=8, stride=4, frame_step=3).starts(40).tolist() == [0, 4, 8, 12, 16]   # span 22


def test_video_means_equal_mean_over_clips(tiny):
    """The streaming per-video mean equals the metric module's mean of the per-clip rows; no clip is dropped."""
    store = Store(tiny[0])
    videos = store.videos("ucf101", "1", "train")
    loaded = load_model(tiny[1])
    spec = F.ClipSpec("stride", clip_len=8, crop=32, stride=40)
    # batch_size 5 does not divide the clip count: the last partial batch must be kept.
    feats = F.extract_features(F.tap_forward(loaded.backbone, ["pool", "pool3"]), store, videos, spec,
                               clip_taps=["pool"], batch_size=5, progress=False)
    n_clips = sum(len(spec.starts(v.num_frames)) for v in videos)
    assert n_clips % 5 and feats.clips["pool"].shape[0] == n_clips
    assert feats.video["pool"].shape == (len(videos), loaded.backbone.feature_dim)
    assert feats.video["pool3"].shape[0] == len(videos) and "pool3" not in feats.clips
    expected = mean_over_clips(feats.clips["pool"], feats.clip_video, len(videos))
    np.testing.assert_allclose(feats.video["pool"], expected, rtol=1e-5, atol=1e-6)
    assert feats.keys == [v.key for v in videos]
    assert feats.labels.tolist() == [v.label for v in videos]


def test_save_load_roundtrip_is_atomic(tmp_path):
    feats = F.Features(keys=["a/x.avi", "a/y.avi"], labels=np.array([0, 1]), video={"pool": np.eye(2, dtype=np.float32)},
                       clips={"logits": np.arange(6, dtype=np.float32).reshape(3, 2)}, clip_video=np.array([0, 0, 1]))
    path = tmp_path / "c" / "k.npz"
    C.save_features(path, feats, {"what": "test"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.npz"]  # no temp file left behind
    back = C.load_features(path)
    assert back.keys == feats.keys and back.cache_hit
    np.testing.assert_array_equal(back.video["pool"], feats.video["pool"])
    np.testing.assert_array_equal(back.clips["logits"], feats.clips["logits"])
    np.testing.assert_array_equal(back.clip_video, feats.clip_video)


def test_checkpoint_hash_is_memoised_by_file_version(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"weights-1")
    memo = tmp_path / "features"
    C._SHA_MEMO.clear()
    first = C.file_sha256(f, memo_dir=memo)
    assert first == __import__("hashlib").sha256(b"weights-1").hexdigest()
    # A new process reads the sidecar instead of hashing: prove it by planting a value there.
    C._SHA_MEMO.clear()
    doc = json.loads((memo / C.HASH_MEMO_FILE).read_text())
    doc["w.pt"]["sha256"] = "planted"
    (memo / C.HASH_MEMO_FILE).write_text(json.dumps(doc))
    assert C.file_sha256(f, memo_dir=memo) == "planted"
    # A new version of the file (new size / mtime) is hashed again.
    C._SHA_MEMO.clear()
    f.write_bytes(b"weights-22")
    assert C.file_sha256(f, memo_dir=memo) == __import__("hashlib").sha256(b"weights-22").hexdigest()


def test_store_fingerprint_is_stable_and_per_dataset(tiny):
    a = C.store_fingerprint(Store(tiny[0]), "ucf101")
    assert a == C.store_fingerprint(Store(tiny[0]), "ucf101") and len(a) == 64


def test_cache_reused_then_invalidated_by_a_changed_checkpoint(tiny, tmp_path):
    store, best = tiny
    ckpt = tmp_path / "run" / "model.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(best.read_bytes())

    before = F.EXTRACTIONS
    first = recognition_json(ckpt, store)
    assert first["features"]["cache_hit"] is False and F.EXTRACTIONS == before + 1
    cache = Path(first["features"]["path"])
    assert cache.parent == ckpt.parent / "features" and cache.is_file()
    stamp = cache.stat().st_mtime_ns

    # Same protocol, different averaging and batch size: served from the cache, the model does not run.
    again = recognition_json(ckpt, store, "--average", "logit", "--batch-size", 7)
    assert again["features"] == {"cache_hit": True, "path": str(cache)}
    assert F.EXTRACTIONS == before + 1 and cache.stat().st_mtime_ns == stamp
    assert again["clip"] == first["clip"]  # clip accuracy does not depend on the averaging

    # A different protocol (clip count) is another entry.
    other = recognition_json(ckpt, store, "--clips", 2)
    assert other["features"]["cache_hit"] is False and Path(other["features"]["path"]) != cache

    # Changed weights: a new content hash, so the old entry is not used.
    c = load_checkpoint(ckpt)
    c["model"] = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in c["model"].items()}
    save_checkpoint(c, ckpt)
    changed = recognition_json(ckpt, store)
    assert changed["features"]["cache_hit"] is False
    assert changed["model"]["sha256"] != first["model"]["sha256"]
    assert Path(changed["features"]["path"]) != cache and cache.stat().st_mtime_ns == stamp


def test_cache_hit_is_logged_and_no_cache_extracts(tiny, tmp_path):
    store, ckpt = tiny
    args = ["recognition", "--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--clips", 2, "--workers", 0,
            "--quiet", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out"]
    invoke(eval_main, args)
    second = invoke(eval_main, args)
    assert "features: cache hit" in second.stderr
    before = F.EXTRACTIONS
    third = invoke(eval_main, [*args, "--no-cache"])
    assert F.EXTRACTIONS == before + 1 and "not cached" in third.stderr
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_damaged_cache_file_is_rebuilt(tiny, tmp_path):
    store, ckpt = tiny
    args = ["recognition", "--ckpt", ckpt, "--store", store, "--dataset", "ucf101", "--clips", 2, "--workers", 0,
            "--quiet", "--json", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out"]
    first = json.loads(invoke(eval_main, args).stdout)
    Path(first["features"]["path"]).write_bytes(b"not an npz")
    rebuilt = json.loads(invoke(eval_main, args).stdout)
    assert rebuilt["features"]["cache_hit"] is False and rebuilt["video"] == first["video"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_features_match_cpu(tiny):
    store = Store(tiny[0])
    videos = store.videos("ucf101", "1", "test")
    spec = F.ClipSpec("linspace", clip_len=8, crop=32, n_clips=2)
    loaded = load_model(tiny[1])
    cpu = F.extract_features(F.tap_forward(loaded.backbone, ["pool"]), store, videos, spec, progress=False)
    loaded.model.to("cuda")
    gpu = F.extract_features(F.tap_forward(loaded.backbone, ["pool"]), store, videos, spec, device="cuda",
                             progress=False)
    a, b = cpu.video["pool"], gpu.video["pool"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99, cos

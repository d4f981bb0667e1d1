"""ASLAN action similarity (paper section 4.5, Table 6) from a checkpoint or from any model's features.

From a checkpoint: every video named in the pairs is cut into clips of clip_len frames at stride clip_len / 2
(16 and 8 for the paper's networks; a video shorter than one clip gives one clip that repeats its last frame),
pool3 / pool4 / pool5 features of each clip are averaged per video and L2-normalised, the 12 ASLAN measures per
layer give a 36-d vector per pair, and a linear SVM is trained per fold on the other folds only (standardised on
them), leave-one-fold-out. Results: mean accuracy +- standard error, AUC, a ROC PNG.

From any model: `aslan_from_features(feats_by_layer, ids, pairs)` takes per-video arrays and sample ids, and the
CLI's `--features NPZ` reads them from a file (`save_video_features` writes that format). The measures, the
standardisation and the SVM are `v3s.shared.metrics.aslan`'s.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from v3s.data_manifest import read_pairs
from v3s.shared.atomic import atomic_write
from v3s.shared.paths import check_path
from v3s.shared.store import Store
from v3s.shared.temporal import clip_span

from .config import AslanConfig
from .features import ClipSpec, tap_forward
from v3s.shared.metrics.aslan import AslanResult, evaluate_folds, feature_names, pair_arrays, pair_features
from v3s.shared.metrics.retrieval import l2_normalize_rows
from .plots import roc_png
from .resolve import Extractor, clip_geometry, describe_model, output_dir, resolve_model, resolve_store
from .results import trailer, write_results

DEFAULT_LAYERS = ("pool3", "pool4", "pool5")
IDS_KEY = "ids"


def sample_id(value: Any) -> str:
    """An ASLAN sample id as read_pairs writes it: 4 digits ("42", 42, "0042" and "0042.avi" give "0042")."""
    stem = Path(str(value)).stem
    if not stem.isdigit():
        raise ValueError(f"ASLAN sample id {value!r} is not a number")
    return f"{int(stem):04d}"


def aslan_from_features(
    feats_by_layer: Mapping[str, np.ndarray],
    ids: Sequence[Any],
    pairs: Sequence[Any],
    C: float = 1.0,
    normalize: bool = True,
    **similarity_kwargs: Any,
) -> tuple[AslanResult, np.ndarray]:
    """The ASLAN View-2 protocol on per-video features from any model.

    Args:
        feats_by_layer: layer name -> (N, D_l) one feature per video (e.g. the mean of its clip features); the
            iteration order sets the column order of the pair features.
        ids: (N,) the sample id of each row ("0042", 42 or "0042.avi").
        pairs: records with fold, first, second, same (e.g. `read_pairs("View2.mat")` or a pairs.csv).
        C: linear SVM regularisation, the same for every fold.
        normalize: L2-normalise each video's feature first (the paper's video feature); a zero row stays zero.
        **similarity_kwargs: negative, last_four_norm, eps of `v3s.evaluate.aslan.similarities`.

    Returns:
        (AslanResult, pair features (P, 12 * L) in pair order).
    """
    row_of: dict[str, int] = {}
    for i, s in enumerate(ids):
        sid = sample_id(s)
        if sid in row_of:
            raise ValueError(f"sample {sid} appears twice in ids (rows {row_of[sid]} and {i})")
        row_of[sid] = i
    for layer, x in feats_by_layer.items():
        if np.shape(x)[0] != len(row_of):
            raise ValueError(f"layer {layer!r} has {np.shape(x)[0]} rows but there are {len(row_of)} ids")
    feats = {k: l2_normalize_rows(v) if normalize else np.asarray(v, dtype=np.float64) for k, v in feats_by_layer.items()}
    first, second, same, folds = pair_arrays(list(pairs), row_of)
    x = pair_features(feats, first, second, **similarity_kwargs)
    return evaluate_folds(x, same, folds, C=C), x


def save_video_features(path: str | os.PathLike, feats_by_layer: Mapping[str, np.ndarray], ids: Sequence[Any]) -> Path:
    """Write per-video features in the `--features` format: one (N, D) array per layer plus `ids` (N,) str.

    Args:
        path: the .npz to write.
        feats_by_layer: layer name -> (N, D) array; a layer may not be called "ids".
        ids: (N,) sample ids.
    """
    if IDS_KEY in feats_by_layer:
        raise ValueError(f"a layer may not be named {IDS_KEY!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {IDS_KEY: np.array([sample_id(s) for s in ids]), **{k: np.asarray(v) for k, v in feats_by_layer.items()}}
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_video_features(path: str | os.PathLike, layers: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read a `--features` .npz: (layer -> (N, D) array, ids). layers=None takes every array but `ids`, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        if IDS_KEY not in z.files:
            raise ValueError(f"features file {path} has no {IDS_KEY!r} array (sample id of each row); it holds {z.files}")
        available = [k for k in z.files if k != IDS_KEY]
        layers = list(layers) if layers else available
        missing = [k for k in layers if k not in available]
        if missing:
            raise ValueError(f"features file {path} has no layer(s) {missing}; it holds {available}")
        return {k: z[k] for k in layers}, [str(s) for s in z[IDS_KEY].tolist()]


def resolve_pairs(cfg: AslanConfig, store: Store | None, log: Callable[[str], None] | None) -> tuple[list, str]:
    """(the View-2 pairs, what they are called): the --pairs file, else the pairs recorded with the dataset when
    its ASLAN folder was extracted.

    Raises:
        ValueError: no --pairs and none recorded (or --features, which has no store), or a file with no pairs.
    """
    if cfg.pairs is not None:
        pairs = read_pairs(check_path(cfg.pairs, "file", "--pairs"))
        if not pairs:
            raise ValueError(f"pairs file {cfg.pairs} holds no pairs")
        return list(pairs), str(cfg.pairs)
    if store is None:
        raise ValueError("--features needs --pairs (the View2.mat or pairs.csv its ids refer to)")
    pairs = store.pairs(cfg.dataset)
    if not pairs:
        raise ValueError(f"no --pairs given, and {cfg.dataset!r} in store {cfg.store} has no pairs recorded (it was "
                         "not extracted from an ASLAN folder with View2.mat or pairs.csv); pass --pairs FILE")
    if log:
        log(f"pairs: the {len(pairs)} pairs recorded with {cfg.dataset!r} in the store (--pairs to use a file)")
    return list(pairs), f"{cfg.dataset} in {cfg.store}"


def run_aslan(cfg: AslanConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate ASLAN; write results.json, roc.png (and, from a checkpoint, video_features.npz).

    Args:
        cfg: the options.
        log: receives one-line progress messages.

    Returns:
        the results dict (also written as results.json).
    """
    if cfg.features and (cfg.ckpt or cfg.random):
        raise ValueError("give exactly one of --ckpt CHECKPOINT, --random (with --backbone) and --features NPZ")
    loaded = store = None
    if not cfg.features:
        cfg, loaded = resolve_model(cfg, log=log)
        cfg, store = resolve_store(cfg, loaded, log)
    pairs, pairs_from = resolve_pairs(cfg, store, log)
    needed = sorted({s for p in pairs for s in (p.first, p.second)})
    notes: list[str] = []
    model_info: dict[str, Any]
    protocol: dict[str, Any] = {"source": "features file"}
    feature_info = None
    if cfg.features:
        feats, ids = load_video_features(cfg.features, cfg.layers)
        missing = sorted(set(needed) - {sample_id(s) for s in ids})
        if missing:
            raise ValueError(f"{len(missing)} sample(s) named in {pairs_from} have no row in {cfg.features}, "
                             f"e.g. {missing[:5]}")
        model_info = {"kind": "features", "features": str(cfg.features)}
        out = check_path(cfg.out or Path(cfg.features).resolve().parent / f"aslan-{Path(cfg.features).stem}",
                         "out-dir", "--out")
    else:
        out = output_dir(cfg, loaded, f"aslan-{Path(cfg.pairs).stem if cfg.pairs else cfg.dataset}")
        layers = list(cfg.layers or DEFAULT_LAYERS)
        bad = [t for t in layers if t not in loaded.backbone.tap_names]
        if bad:
            raise ValueError(f"layers {bad} are not taps of {loaded.config.backbone!r}; valid: {list(loaded.backbone.tap_names)}")
        by_id: dict[str, Any] = {}
        for v in store.videos(cfg.dataset):
            if Path(v.rel_path).stem.isdigit():
                by_id.setdefault(sample_id(v.rel_path), v)
        missing = [s for s in needed if s not in by_id]
        if missing:
            failed = {Path(f["rel_path"]).stem: f["status"] for f in store.failures(cfg.dataset)}
            why = ", ".join(f"{s} ({failed.get(s, 'absent')})" for s in missing[:5])
            raise ValueError(f"{len(missing)} sample(s) named in {pairs_from} are not ok videos of {cfg.dataset!r} in "
                             f"store {cfg.store}: {why}")
        videos = [by_id[s] for s in needed]
        geometry = clip_geometry(cfg, loaded)
        spec = ClipSpec("stride", stride=cfg.stride or max(1, geometry["clip_len"] // 2), **geometry)
        span = clip_span(spec.clip_len, spec.frame_step)
        short = sum(v.num_frames < span for v in videos)
        if short:
            notes.append(f"{short} video(s) are shorter than {span} frames: one clip each, last frame repeated")
        extracted = Extractor.for_model(cfg, loaded, log).features(
            loaded, tap_forward(loaded.backbone, layers), layers, store, cfg.dataset, videos, spec, what={"task": "aslan"})
        feats, ids = {t: extracted.video[t] for t in layers}, needed
        model_info = describe_model(loaded)
        protocol = spec.key()
        feature_info = {"cache_hit": extracted.cache_hit, "path": extracted.cache_path}

    result, pair_x = aslan_from_features(feats, ids, pairs, C=cfg.C, negative=cfg.negative,
                                         last_four_norm=cfg.last_four_norm)
    files = {"roc": roc_png(*result.roc, result.auc, out / "roc.png",
                            title=f"ASLAN: {100 * result.mean:.2f} +- {100 * result.std_error:.2f} % accuracy")}
    if not cfg.features:
        files["video_features"] = save_video_features(out / "video_features.npz", feats, ids)
    return write_results(out, {
        "task": "aslan",
        "model": model_info,
        "pairs": pairs_from,
        "n_pairs": len(pairs),
        "n_videos": len(ids),
        "n_folds": int(result.fold_ids.size),
        "layers": list(feats),
        "feature_names": feature_names(list(feats)),
        "pair_feature_dim": int(pair_x.shape[1]),
        "C": cfg.C,
        "protocol": protocol,
        **result.summary(),
        "notes": notes,
        "features": feature_info,
        "config": cfg.to_dict(),
    }, files)


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    lines = [
        f"aslan  {results['n_pairs']} pairs, {results['n_folds']} folds, {results['n_videos']} videos, "
        f"layers {','.join(results['layers'])} ({results['pair_feature_dim']}-d pair features), C={results['C']:g}",
        f"  accuracy {100 * results['accuracy_mean']:.2f} +- {100 * results['accuracy_std_error']:.2f} %   "
        f"AUC {100 * results['auc']:.2f} %  (mean of fold AUCs "
        + ("n/a" if results["auc_fold_mean"] is None else f"{100 * results['auc_fold_mean']:.2f} %") + ")",
        "  per fold: " + " ".join(f"{100 * a:.1f}" for a in results["fold_accuracies"]),
    ]
    return "\n".join(lines + trailer(results))

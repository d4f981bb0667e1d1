"""ASLAN action-similarity protocol on feature arrays from any model: 12 (dis)similarities, fold-wise SVM.

The measures are the rows of Kliper-Gross et al., TPAMI 2012, Table 3 (transcribed in
``reference/aslan/PROTOCOL.md``). The paper defines them for non-negative BoW histograms and leaves the edge
cases open; our choices (docs/protocols.md, "ASLAN") are:

* Rows 1, 5, 7 and 9 (inner product, cosine, L1, L2) are defined for any real vectors and use them as given.
  The other rows need non-negative entries (sqrt, log, x1+x2 as a denominator) and see ``negative(x)``:
  "clip" = max(x, 0) (default), "abs" = |x|, or "error" to refuse negative input. For non-negative features
  (post-ReLU, as in our backbones) every option is the identity.
* Table 3's caption says the "last four rows" use normalised vectors. We read this as rows 9-12 and L2
  normalisation. AUC is invariant to monotone transforms. The table's AUCs for row 5 (cosine) and row 9 (L2)
  agree within 0.03 points in all four columns, and L2 distance is monotone in cosine only on L2-normalised
  vectors. Row 12 is far from row 7 (L1), which rules out L1 normalisation (details in docs/protocols.md).
  ``last_four_norm`` selects "l2" (default), "l1" or "none". Our video features are already L2-normalised
  (the paper), so for them "l2" changes nothing.
* Zeros: an all-zero vector stays zero under normalisation; terms whose denominator x1[d]+x2[d] is 0 are
  skipped (rows 4 and 6 tend to 0 there; row 11 has no limit, so skipping means summing over the union of the
  supports); 0/0 in rows 5 and 12 is 0; row 10 uses log(x + eps), which keeps it finite where exactly one
  entry is 0 and gives 0 where both are.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
if TYPE_CHECKING:  # scikit-learn is imported where it is used: the CLI's --help need not load it
    from sklearn.pipeline import Pipeline

from .recognition import mean_over_clips
from .retrieval import l2_normalize_rows

SIMILARITY_NAMES = (
    "inner_product",
    "sqrt_inner_product",
    "sqrt_bhattacharyya",
    "sqrt_harmonic",
    "cosine",
    "sqrt_chi2",
    "l1",
    "hellinger",
    "l2",
    "sym_kl",
    "max_over_sum",
    "intersection_over_totals",
)
NEGATIVE_MODES = ("clip", "abs", "error")
NORM_MODES = ("l2", "l1", "none")
# Pairs are processed in blocks of about this many (pair, dim) elements so memory stays bounded for wide features.
_CHUNK_ELEMENTS = 1 << 22


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (a skipped 0/0 term)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _normalize(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "none":
        return x
    norms = np.abs(x).sum(axis=1, keepdims=True) if mode == "l1" else np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _similarities_block(a: np.ndarray, b: np.ndarray, negative: str, last_four_norm: str, eps: float) -> np.ndarray:
    """The 12 measures for a block of pairs; a, b: (P, D) float64 raw features."""
    if negative == "clip":
        pa, pb = np.maximum(a, 0.0), np.maximum(b, 0.0)
    elif negative == "abs":
        pa, pb = np.abs(a), np.abs(b)
    else:
        pa, pb = a, b
    out = np.empty((a.shape[0], 12))
    # Rows 1-8: original vectors.
    ip = (a * b).sum(axis=1)
    prod = pa * pb
    total = pa + pb
    out[:, 0] = ip
    out[:, 1] = np.sqrt(prod.sum(axis=1))
    out[:, 2] = np.sqrt(np.sqrt(prod).sum(axis=1))
    out[:, 3] = np.sqrt(_safe_div(prod, total).sum(axis=1))
    out[:, 4] = _safe_div(ip, np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    out[:, 5] = np.sqrt(_safe_div((pa - pb) ** 2, total).sum(axis=1))
    out[:, 6] = np.abs(a - b).sum(axis=1)
    out[:, 7] = np.sqrt(((np.sqrt(pa) - np.sqrt(pb)) ** 2).sum(axis=1))
    # Rows 9-12: normalised vectors (row 9 on the raw vectors, rows 10-12 on the non-negative ones).
    na, nb = _normalize(a, last_four_norm), _normalize(b, last_four_norm)
    qa, qb = _normalize(pa, last_four_norm), _normalize(pb, last_four_norm)
    out[:, 8] = np.sqrt(((na - nb) ** 2).sum(axis=1))
    # sum x1 log(x1/x2) + x2 log(x2/x1) = sum (x1 - x2)(log x1 - log x2), halved.
    out[:, 9] = 0.5 * ((qa - qb) * (np.log(qa + eps) - np.log(qb + eps))).sum(axis=1)
    out[:, 10] = _safe_div(np.sqrt(np.maximum(qa, qb)), np.sqrt(qa + qb)).sum(axis=1)
    out[:, 11] = _safe_div(np.minimum(qa, qb).sum(axis=1), qa.sum(axis=1) * qb.sum(axis=1))
    return out


def similarities(
    x1: np.ndarray,
    x2: np.ndarray,
    negative: str = "clip",
    last_four_norm: str = "l2",
    eps: float = 1e-10,
) -> np.ndarray:
    """The 12 ASLAN (dis)similarities of each pair (x1[i], x2[i]), in SIMILARITY_NAMES order.

    Args:
        x1: (P, D) first member of each pair.
        x2: (P, D) second member of each pair.
        negative: how rows 2-4, 6, 8, 10-12 treat negative entries: "clip" (max(x, 0)), "abs" (|x|) or
            "error" (raise ValueError).
        last_four_norm: normalisation applied before rows 9-12: "l2", "l1" or "none".
        eps: added inside the logs of row 10 (symmetrised KL); must be > 0.

    Returns:
        (P, 12) float64, every entry finite.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    if x1.ndim != 2 or x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must be 2-D arrays of the same shape (P, D), got {x1.shape} and {x2.shape}")
    for name, x in (("x1", x1), ("x2", x2)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")
    if negative not in NEGATIVE_MODES:
        raise ValueError(f"negative must be one of {NEGATIVE_MODES}, got {negative!r}")
    if last_four_norm not in NORM_MODES:
        raise ValueError(f"last_four_norm must be one of {NORM_MODES}, got {last_four_norm!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if negative == "error" and ((x1 < 0).any() or (x2 < 0).any()):
        raise ValueError("x1/x2 contain negative entries and negative='error'; use negative='clip' or 'abs'")
    step = max(1, _CHUNK_ELEMENTS // max(1, x1.shape[1]))
    out = np.empty((x1.shape[0], 12))
    for start in range(0, x1.shape[0], step):
        sl = slice(start, start + step)
        out[sl] = _similarities_block(x1[sl], x2[sl], negative, last_four_norm, eps)
    return out


def feature_names(layers: list[str] | tuple[str, ...]) -> list[str]:
    """Column names of :func:`pair_features` for these layers, e.g. "pool3/cosine"."""
    return [f"{layer}/{name}" for layer in layers for name in SIMILARITY_NAMES]


def pair_features(
    feats_by_layer: Mapping[str, np.ndarray], first: np.ndarray, second: np.ndarray, **similarity_kwargs: Any
) -> np.ndarray:
    """Concatenate the 12 measures of every layer for each pair: 12 * L columns, layer-major.

    Args:
        feats_by_layer: layer name -> (N, D_l) video features (rows are videos); iteration order sets the
            column order (see :func:`feature_names`). Three layers (pool3, pool4, pool5) give 36 columns.
        first: (P,) int row of the first video of each pair.
        second: (P,) int row of the second video of each pair.
        **similarity_kwargs: passed to :func:`similarities` (negative, last_four_norm, eps).

    Returns:
        (P, 12 * L) float64.
    """
    if not feats_by_layer:
        raise ValueError("feats_by_layer is empty; give at least one layer's (N, D) features")
    first, second = np.asarray(first), np.asarray(second)
    if first.ndim != 1 or first.shape != second.shape:
        raise ValueError(f"first and second must be 1-D of the same length, got {first.shape} and {second.shape}")
    for name, idx in (("first", first), ("second", second)):
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{name} must hold integer row indices, got dtype {idx.dtype}")
    columns = []
    n_rows = None
    for layer, feats in feats_by_layer.items():
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2:
            raise ValueError(f"features of layer {layer!r} must be 2-D (N, D), got shape {feats.shape}")
        if n_rows is not None and feats.shape[0] != n_rows:
            raise ValueError(f"layer {layer!r} has {feats.shape[0]} rows, the previous layers {n_rows}")
        n_rows = feats.shape[0]
        for name, idx in (("first", first), ("second", second)):
            if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
                raise ValueError(f"{name} must lie in [0, {n_rows}), got values in [{idx.min()}, {idx.max()}]")
        columns.append(similarities(feats[first], feats[second], **similarity_kwargs))
    return np.concatenate(columns, axis=1)


def pair_arrays(
    pairs: Sequence[Any], row_of: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Turn pair records into the index arrays of :func:`pair_features` and :func:`evaluate_folds`.

    Args:
        pairs: records with attributes first, second (sample ids), same (bool) and fold (int), e.g. the
            ``Pair`` tuple from ``v3s.data_manifest.read_pairs`` (View2.mat or CSV).
        row_of: sample id -> row of that sample in the feature arrays.

    Returns:
        first (P,) int64, second (P,) int64, same (P,) bool, folds (P,) int64.
    """
    if not pairs:
        raise ValueError("pairs is empty")
    missing = sorted({s for p in pairs for s in (p.first, p.second) if s not in row_of})
    if missing:
        raise ValueError(f"{len(missing)} sample(s) of the pairs have no features, e.g. {missing[:5]}")
    first = np.array([row_of[p.first] for p in pairs], dtype=np.int64)
    second = np.array([row_of[p.second] for p in pairs], dtype=np.int64)
    same = np.array([bool(p.same) for p in pairs])
    folds = np.array([int(p.fold) for p in pairs], dtype=np.int64)
    return first, second, same, folds


def video_features(clip_feats: np.ndarray, video_index: np.ndarray, n_videos: int) -> np.ndarray:
    """The paper's video feature: mean of the clip features, then L2 normalisation (a zero mean stays zero).

    Args:
        clip_feats: (N_clips, D) features of every clip (e.g. 16-frame clips at stride 8).
        video_index: (N_clips,) int video of each clip, 0..n_videos-1; every video needs a clip.
        n_videos: number of videos.

    Returns:
        (n_videos, D) float64.
    """
    return l2_normalize_rows(mean_over_clips(clip_feats, video_index, n_videos))


@dataclass(frozen=True)
class AslanResult:
    """Leave-one-fold-out results. Accuracies are fractions in [0, 1].

    Attributes:
        fold_ids: (n_folds,) the fold labels, sorted; entry i of every per-fold array refers to fold_ids[i].
        fold_accuracies: (n_folds,) accuracy on each held-out fold.
        mean: mean of fold_accuracies.
        std_error: sigma / sqrt(n_folds), sigma the sample standard deviation (ddof=1), as ASLAN prescribes.
        auc: the headline AUC: one ROC over the held-out decision values of all folds pooled.
        fold_aucs: (n_folds,) AUC within each held-out fold (NaN for a fold holding one class only).
        auc_fold_mean: mean of the defined fold_aucs.
        roc: (fpr, tpr) of the pooled ROC curve.
        decision: (P,) held-out SVM decision value of every pair, in input order (> 0 means "same").
        models: one fitted StandardScaler + LinearSVC pipeline per fold, trained without that fold.
    """

    fold_ids: np.ndarray
    fold_accuracies: np.ndarray
    mean: float
    std_error: float
    auc: float
    fold_aucs: np.ndarray
    auc_fold_mean: float
    roc: tuple[np.ndarray, np.ndarray]
    decision: np.ndarray
    models: tuple[Pipeline, ...] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no models, no ROC points)."""
        return {
            "accuracy_mean": self.mean,
            "accuracy_std_error": self.std_error,
            "auc": self.auc,
            "auc_fold_mean": self.auc_fold_mean,
            "fold_ids": self.fold_ids.tolist(),
            "fold_accuracies": self.fold_accuracies.tolist(),
            "fold_aucs": self.fold_aucs.tolist(),
        }


def standard_error(values: np.ndarray) -> float:
    """sigma / sqrt(n) with sigma the sample standard deviation (divisor n - 1); needs n >= 2."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"standard_error needs a 1-D array of at least 2 values, got shape {values.shape}")
    return float(values.std(ddof=1) / np.sqrt(values.size))


def fit_fold(train_feats: np.ndarray, train_same: np.ndarray, C: float = 1.0) -> Pipeline:
    """Fit the per-fold classifier: standardisation and a linear SVM, both on the given training pairs only.

    Args:
        train_feats: (P_train, F) pair features of the training folds.
        train_same: (P_train,) bool, True for "same" pairs.
        C: SVM regularisation strength (inverse).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    # liblinear's primal solver is deterministic; random_state pins the dual solver should sklearn pick it.
    model = make_pipeline(StandardScaler(), LinearSVC(C=C, dual="auto", max_iter=100_000, random_state=0))
    return model.fit(train_feats, train_same)


def evaluate_folds(pair_feats: np.ndarray, same: np.ndarray, folds: np.ndarray, C: float = 1.0) -> AslanResult:
    """Leave-one-fold-out: for each fold, fit on the other folds only and score the held-out fold.

    Args:
        pair_feats: (P, F) pair features (e.g. :func:`pair_features`, 36 columns).
        same: (P,) bool or 0/1, True/1 for a "same" pair.
        folds: (P,) int fold of each pair (ASLAN View-2: 10 folds of 600 pairs).
        C: SVM regularisation strength, the same for every fold (no tuning on held-out data).

    Returns:
        AslanResult.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    pair_feats = np.asarray(pair_feats, dtype=np.float64)
    if pair_feats.ndim != 2:
        raise ValueError(f"pair_feats must be 2-D (P, F), got shape {pair_feats.shape}")
    if not np.isfinite(pair_feats).all():
        raise ValueError("pair_feats contains NaN or inf")
    n = pair_feats.shape[0]
    same, folds = np.asarray(same), np.asarray(folds)
    if same.shape != (n,) or folds.shape != (n,):
        raise ValueError(f"same and folds must have shape ({n},), got {same.shape} and {folds.shape}")
    if not np.isin(same, (0, 1)).all():
        raise ValueError(f"same must be bool or 0/1, got values {np.unique(same)[:5].tolist()}")
    same = same.astype(bool)
    if np.unique(same).size < 2:
        raise ValueError("same holds only one class of pairs; the SVM and AUC need both")
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C}")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise ValueError(f"need at least 2 folds for leave-one-fold-out, got {fold_ids.tolist()}")

    decision = np.empty(n)
    accuracies, aucs, models = [], [], []
    for f in fold_ids:
        test = folds == f
        train = ~test
        if np.unique(same[train]).size < 2:
            raise ValueError(f"the training folds for held-out fold {f} hold only one class of pairs")
        model = fit_fold(pair_feats[train], same[train], C=C)
        decision[test] = model.decision_function(pair_feats[test])
        accuracies.append(float(((decision[test] > 0) == same[test]).mean()))
        both = np.unique(same[test]).size == 2
        aucs.append(float(roc_auc_score(same[test], decision[test])) if both else np.nan)
        models.append(model)

    accuracies = np.asarray(accuracies)
    aucs = np.asarray(aucs)
    fpr, tpr, _ = roc_curve(same, decision)
    return AslanResult(
        fold_ids=fold_ids,
        fold_accuracies=accuracies,
        mean=float(accuracies.mean()),
        std_error=standard_error(accuracies),
        auc=float(roc_auc_score(same, decision)),
        fold_aucs=aucs,
        auc_fold_mean=float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
        roc=(fpr, tpr),
        decision=decision,
        models=tuple(models),
    )

"""Timing of the evaluation metrics at the real datasets' sizes on random features.

Run: .venv/bin/python bench/bench_eval_metrics.py  (figures in docs/protocols.md)
"""
import time, numpy as np
from v3s.shared.metrics.retrieval import retrieval_topk
from v3s.evaluate.aslan import pair_features, evaluate_folds
rng = np.random.default_rng(0)
q, g = np.maximum(rng.normal(size=(3783, 512)), 0), np.maximum(rng.normal(size=(9537, 512)), 0)
ql, gl = rng.integers(0, 101, 3783), rng.integers(0, 101, 9537)
t = time.perf_counter(); r = retrieval_topk(q, ql, g, gl); print(f"retrieval UCF101 split-1 size (3783 x 9537 x 512): {time.perf_counter()-t:.1f} s", r)
feats = {n: np.maximum(rng.normal(size=(3697, d)), 0) for n, d in (("pool3", 128), ("pool4", 256), ("pool5", 512))}
first, second = rng.integers(0, 3697, 6000), rng.integers(0, 3697, 6000)
t = time.perf_counter(); x = pair_features(feats, first, second); print(f"pair_features 6000 pairs, D=128/256/512: {time.perf_counter()-t:.2f} s", x.shape)
same = np.tile(np.repeat([True, False], 300), 10); folds = np.repeat(np.arange(10), 600)
t = time.perf_counter(); res = evaluate_folds(x, same, folds); print(f"evaluate_folds 10 x 600 pairs, 36-d: {time.perf_counter()-t:.2f} s", res.summary()["accuracy_mean"], res.auc)

"""The learned cost model: XGBoost ranking candidates by predicted throughput.

Training data are measured candidates: their feature vectors (``features.py``) and
throughput relative to the best measured for the same task (so tasks of different sizes
share one scale).  The objective is pairwise ranking within each task (``rank:pairwise``
with one query group per task): the search only needs the order of candidates, and a
ranking loss spends the model's capacity on telling good from better.

``fit`` retrains from scratch on everything measured so far (fast at these sizes: a few
thousand rows); ``warm_start`` loads records from tuning logs that carry features, which
is how knowledge transfers from earlier tuning runs and from other tasks.
``quality`` reports Spearman rank correlation and top-k recall on held-out measurements.
"""
from __future__ import annotations

import numpy as np

from .features import LENGTH, padded


class CostModel:
    def __init__(self, seed: int = 0, rounds: int = 120):
        self.seed = seed
        self.rounds = rounds
        self._booster = None
        self._rows: list = []        # (task key, features, throughput)

    # -- data -----------------------------------------------------------------------
    def add(self, task_key: str, features, throughput: float):
        features = padded(features)
        if features is None or not np.isfinite(throughput):
            return
        self._rows.append((task_key, features, float(throughput)))

    def warm_start(self, records) -> int:
        """Add every successful record that carries features; returns how many."""
        n0 = len(self._rows)
        for r in records:
            if r.ok and r.features is not None and r.cost > 0:
                self.add(r.key, r.features, 1.0 / r.cost)
        return len(self._rows) - n0

    @property
    def size(self) -> int:
        return len(self._rows)

    def _matrix(self, rows):
        rows = sorted(rows, key=lambda r: r[0])
        keys = [r[0] for r in rows]
        X = np.stack([r[1] for r in rows]) if rows else np.zeros((0, LENGTH), np.float32)
        thr = np.array([r[2] for r in rows], dtype=np.float64)
        y = np.zeros_like(thr)
        groups = []
        start = 0
        for i in range(1, len(keys) + 1):
            if i == len(keys) or keys[i] != keys[start]:
                seg = thr[start:i]
                y[start:i] = seg / seg.max()
                groups.append(i - start)
                start = i
        return X, y, groups, keys

    # -- training and prediction ----------------------------------------------------------
    def fit(self) -> bool:
        import xgboost as xgb
        if len(self._rows) < 8:
            self._booster = None
            return False
        X, y, groups, _ = self._matrix(self._rows)
        # graded relevance from normalised throughput (rank:pairwise wants ordinal labels)
        labels = np.floor(y * 20.0)
        dtrain = xgb.DMatrix(X, label=labels)
        dtrain.set_group(groups)
        params = {"objective": "rank:pairwise", "eta": 0.2, "max_depth": 6, "min_child_weight": 1,
                  "subsample": 0.9, "colsample_bytree": 0.9, "seed": self.seed, "nthread": 1,
                  "verbosity": 0}
        self._booster = xgb.train(params, dtrain, num_boost_round=self.rounds)
        return True

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores (higher = faster); zeros when untrained."""
        import xgboost as xgb
        features = np.asarray(features, dtype=np.float32).reshape(-1, LENGTH)
        if self._booster is None:
            return np.zeros(len(features))
        return self._booster.predict(xgb.DMatrix(features))

    # -- quality report -----------------------------------------------------------------------
    def quality(self, test_rows=None, k: int = 8, holdout: float = 0.25) -> dict:
        """Rank correlation and top-k recall, per task, on held-out measurements.

        Without ``test_rows`` a random ``holdout`` share of each task's rows is held out and
        a model trained on the rest is evaluated on them."""
        rng = np.random.default_rng(self.seed)
        if test_rows is None:
            by_task: dict = {}
            for r in self._rows:
                by_task.setdefault(r[0], []).append(r)
            train, test = [], []
            for rows in by_task.values():
                idx = rng.permutation(len(rows))
                cut = max(1, int(len(rows) * holdout))
                test.extend(rows[i] for i in idx[:cut])
                train.extend(rows[i] for i in idx[cut:])
            model = CostModel(self.seed, self.rounds)
            model._rows = train
            model.fit()
        else:
            model, test = self, list(test_rows)
        by_task = {}
        for r in test:
            by_task.setdefault(r[0], []).append(r)
        rhos, recalls = [], []
        for rows in by_task.values():
            if len(rows) < 4:
                continue
            X = np.stack([r[1] for r in rows])
            thr = np.array([r[2] for r in rows])
            pred = model.predict(X)
            rhos.append(_spearman(pred, thr))
            kk = min(k, len(rows))
            top_true = set(np.argsort(-thr)[:kk])
            top_pred = set(np.argsort(-pred)[:kk])
            recalls.append(len(top_true & top_pred) / kk)
        return {"tasks": len(rhos), "spearman": float(np.mean(rhos)) if rhos else float("nan"),
                f"top{k}_recall": float(np.mean(recalls)) if recalls else float("nan"),
                "test_rows": len(test)}


def _spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0

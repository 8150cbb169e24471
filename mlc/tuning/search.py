"""Choosing which candidates to measure next.

:class:`ModelGuidedSearch` runs simulated annealing over the cost model's predictions:
a population seeded with the best measured configurations plus random ones walks the
space by mutation and crossover, accepting worse moves with a probability that cools
over the steps; the best-scored *unmeasured* configurations become the next batch, with
~5% random picks (epsilon-greedy) so the model keeps seeing the unexpected, and only
distinct configurations (the diversity term: no candidate is proposed twice).

:class:`RandomSearch` is the baseline the model-guided search is measured against.
Scoring needs a candidate's features, i.e. its lowered loop nest; they are cached per
configuration.
"""
from __future__ import annotations

import math
import random

import numpy as np


class RandomSearch:
    def __init__(self, space, seed: int = 0):
        self.space = space
        self.rng = random.Random(seed)

    def propose(self, n: int, measured: set, best: list) -> list:
        out, seen = [], set(measured)
        for _ in range(n * 50):
            if len(out) >= n:
                break
            cfg = self.space.sample(self.rng)
            if cfg not in seen:
                seen.add(cfg)
                out.append(cfg)
        return out


class ModelGuidedSearch:
    def __init__(self, space, model, feature_fn, seed: int = 0, epsilon: float = 0.05,
                 population: int = 64, steps: int = 6):
        self.space = space
        self.model = model
        self.feature_fn = feature_fn
        self.rng = random.Random(seed)
        self.epsilon = epsilon
        self.population = population
        self.steps = steps
        self._features: dict = {}

    def features(self, cfgs: list) -> np.ndarray:
        rows = []
        for c in cfgs:
            f = self._features.get(c)
            if f is None:
                f = self.feature_fn(c)
                self._features[c] = f
            rows.append(f)
        return np.stack(rows)

    def score(self, cfgs: list) -> np.ndarray:
        return self.model.predict(self.features(cfgs))

    def propose(self, n: int, measured: set, best: list) -> list:
        """``best``: measured configurations, best first."""
        if not self.model.trained:
            return RandomSearch(self.space, self.rng.randrange(1 << 30)).propose(n, measured, best)
        pop = list(dict.fromkeys(best[:self.population // 4]))
        while len(pop) < self.population:
            pop.append(self.space.sample(self.rng))
        scores = list(self.score(pop))
        pool: dict = {}
        for c, s in zip(pop, scores):
            if c not in measured:
                pool[c] = s
        spread = (max(scores) - min(scores)) or 1.0
        for step in range(self.steps):
            temp = spread * 0.5 * (1.0 - step / self.steps) + 1e-9
            cand = []
            for c in pop:
                if self.rng.random() < 0.2 and len(pop) > 1:
                    cand.append(self.space.crossover(c, self.rng.choice(pop), self.rng))
                else:
                    cand.append(self.space.mutate(c, self.rng))
            cscores = self.score(cand)
            for i, (c, s) in enumerate(zip(cand, cscores)):
                if c not in measured:
                    pool[c] = s
                if s >= scores[i] or self.rng.random() < math.exp((s - scores[i]) / temp):
                    pop[i], scores[i] = c, s
        ranked = sorted(pool, key=lambda c: -pool[c])
        n_random = max(1, int(round(n * self.epsilon))) if n >= 4 else 0
        out = ranked[:n - n_random]
        chosen = set(out) | set(measured)
        for c in RandomSearch(self.space, self.rng.randrange(1 << 30)).propose(n_random, chosen, []):
            out.append(c)
        return out[:n]

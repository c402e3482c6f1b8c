"""Leave-one-category-out NAB scoring: every tunable chosen on categories other than the scored one.

A detector whose settings and threshold were picked on the files it is scored on reports how
well it fits them, not how well it does on data it has not seen (live metrics, other NAB
categories). Here each category is held out in turn: every candidate setting gets its best
threshold on the remaining categories (their raw scores summed, as NAB sweeps a corpus), and
the candidate chosen is the one whose *median* remaining category scores best at that
threshold (each category normalised on its own; categories without windows have no
normalised score and only weigh in through the threshold). The choice is run on the held-out
category at its threshold. The held-out raw scores of all folds are added up and normalised
once, as NAB normalises a corpus. Candidates are fed one at a time, so a sweep over many
settings never holds more than one candidate's scores.

Why the median and not the summed score (`select="sum"`, the first version): the summed score
is dominated by the categories with the most windows, so a setting that fits one of them
unusually well wins though it does worse on the others; the median rewards a setting that is
good on most categories, which is what carries to a category not seen. On NAB's five
development categories the summed rule scores 71.4 held out, the median 72.4 (see
benchmarks/anomaly_nab.py for the run).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from swarmperf.analysis import nab
from swarmperf.analysis.nab import FloatArray
from swarmperf.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class FoldChoice:
    """What the other categories chose for one held-out category, and how it did there."""

    held_out: str
    candidate: str
    threshold: float | None  # None: never alarming was best on the other categories
    chosen_on: float  # the selection rule's figure on the other categories
    held_out_score: nab.ProfileScore


@dataclass(frozen=True, slots=True)
class HeldOutScore:
    """The folds' held-out raw scores summed and normalised, under one profile."""

    profile: str
    normalized: float
    raw: float
    null: float
    perfect: float
    folds: tuple[FoldChoice, ...]


def _subset(corpus: nab.Corpus, keep: set[str]) -> nab.Corpus:
    windows = corpus.windows or {}
    return nab.Corpus(
        root=corpus.root,
        series=tuple(s for s in corpus.series if s.category in keep),
        windows={s.key: windows[s.key] for s in corpus.series if s.category in keep},
        profiles=corpus.profiles,
    )


Select = Literal["median", "sum"]


class LeaveOneCategoryOut:
    """Feed candidates with `add(label, scores)`; read the held-out figures with `result`.

    `select`: "median" (the default) ranks a candidate by its median training category's
    normalised score at the threshold chosen on all training categories together; "sum" by
    the training categories' summed score. Ties go to the candidate added first, so the order
    of the candidates is part of the procedure (give the simpler settings first).
    """

    def __init__(self, corpus: nab.Corpus, select: Select = "median") -> None:
        if select not in ("median", "sum"):
            raise ConfigError("select", select, "Choose median or sum.")
        self.select = select
        if corpus.windows is None:
            raise ConfigError(
                "--corpus", str(corpus.root), "Held-out scoring needs labels (NAB layout)."
            )
        self.corpus = corpus
        self.categories = tuple(sorted({s.category for s in corpus.series}))
        if len(self.categories) < 2:
            raise ConfigError(
                "categories", list(self.categories), "Hold one out of at least two categories."
            )
        self._train = {c: _subset(corpus, set(self.categories) - {c}) for c in self.categories}
        self._test = {c: _subset(corpus, {c}) for c in self.categories}
        self._folds: dict[tuple[str, str], FoldChoice] = {}
        self._whole: dict[str, tuple[str, float, nab.ProfileScore]] = {}

    def _figure(
        self,
        categories: tuple[str, ...],
        pooled: nab.ProfileScore,
        scores: Mapping[str, FloatArray],
        profile: nab.Profile,
    ) -> float:
        """The selection rule's figure for a candidate on `categories` (scored as `pooled`)."""
        if self.select == "sum":
            return pooled.normalized
        each = [nab.score_at(self._test[c], scores, profile, pooled.threshold) for c in categories]
        # A category without windows has no normalised score (nothing to find): it counts
        # through the pooled threshold only.
        scored = [r.normalized for r in each if r.perfect > r.null]
        return statistics.median(scored) if scored else pooled.normalized

    def add(self, label: str, scores: Mapping[str, FloatArray]) -> None:
        """Score one candidate setting (its scores for every series of the corpus)."""
        for name, profile in self.corpus.profiles.items():
            whole = nab.score_corpus(self.corpus, scores, profile)
            figure = self._figure(self.categories, whole, scores, profile)
            kept = self._whole.get(name)
            if kept is None or figure > kept[1]:
                self._whole[name] = (label, figure, whole)
            for category in self.categories:
                train = nab.score_corpus(self._train[category], scores, profile)
                others = tuple(c for c in self.categories if c != category)
                figure = self._figure(others, train, scores, profile)
                fold = self._folds.get((name, category))
                if fold is not None and figure <= fold.chosen_on:
                    continue
                test = nab.score_at(self._test[category], scores, profile, train.threshold)
                self._folds[(name, category)] = FoldChoice(
                    category, label, train.threshold, figure, test
                )

    def result(self, profile: str) -> HeldOutScore:
        """The held-out score under `profile` over every fold."""
        if (profile, self.categories[0]) not in self._folds:
            raise ConfigError(
                "profile",
                profile,
                f"Add a candidate, then ask for one of {sorted(self.corpus.profiles)}.",
            )
        folds = tuple(self._folds[(profile, c)] for c in self.categories)
        raw = sum(f.held_out_score.raw for f in folds)
        null = sum(f.held_out_score.null for f in folds)
        perfect = sum(f.held_out_score.perfect for f in folds)
        span = perfect - null
        normalized = 100.0 * (raw - null) / span if span > 0 else 0.0
        return HeldOutScore(profile, normalized, raw, null, perfect, folds)

    def chosen(self, profile: str) -> tuple[str, nab.ProfileScore]:
        """The procedure applied to every category: the candidate it picks on the whole corpus."""
        label, _, score = self._whole[profile]
        return label, score

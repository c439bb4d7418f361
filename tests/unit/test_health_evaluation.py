"""The health model measured on relationships whose truth is known (bench.evaluation.ties): it must rank strong ties
above weak ones, see a change within weeks (far more often than chance calls a steady tie so), and keep a steady
tie's trend steady. It steps weekly to stay quick; `bench/health_eval.py` steps daily, as the product
recomputes, on five times as many ties (AUC about 0.95, about 90 % of changes caught, false alarms 4–7 %).
The bounds sit below what both measure, so a change that makes the model clearly worse fails here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.evaluation.health_model import WEEKLY, Evaluation, auc, evaluate, spearman
from bench.evaluation.ties import generate

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def result() -> Evaluation:
    return evaluate(generate(relationships=60, seed=11, now=NOW), NOW, WEEKLY)


def test_the_score_ranks_strong_ties_above_weak_ones(result: Evaluation) -> None:
    assert result.auc_truth["model"] >= 0.9
    assert result.auc_truth["model"] >= result.auc_truth["volume90d"]
    assert result.auc_future["model"] >= 0.8
    assert result.spearman >= 0.65


def test_the_trend_sees_changes_within_weeks(result: Evaluation) -> None:
    assert result.cooling_declining >= 0.7
    assert result.warming_improving >= 0.8
    assert result.cooling_delay_weeks is not None
    assert result.cooling_delay_weeks <= 6
    assert result.cooling_declining - result.steady_declining >= 0.5  # not what chance gives a steady tie
    assert result.warming_improving - result.steady_improving >= 0.5


def test_the_trend_of_a_steady_tie_stays_steady(result: Evaluation) -> None:
    assert result.steady_false_alarms <= 0.15
    assert result.steady_flips_per_quarter <= 1.5


def test_the_evaluation_is_deterministic() -> None:
    small = generate(relationships=10, seed=3, now=NOW)
    assert small == generate(relationships=10, seed=3, now=NOW)
    assert evaluate(small, NOW, WEEKLY) == evaluate(small, NOW, WEEKLY)


def test_rank_statistics() -> None:
    assert auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert auc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)

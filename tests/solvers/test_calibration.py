"""Temperature fitting, ECE, reliability diagram and sparsification on hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from solvers.calibration import (
    expected_calibration_error,
    fit_temperature,
    kept_accuracy,
    reliability_diagram,
    sparsification_curve,
    temperature_nll,
    write_reliability_png,
)


def synthetic_cells(
    rng: np.random.Generator, n_cells: int, n_options: int, true_t: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells whose true option is drawn from softmax(score / true_t)."""
    score = rng.normal(0, 3, size=(n_cells, n_options))
    p = np.exp(score / true_t)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n_cells)[:, None]
    truth = (np.cumsum(p, axis=1) < u).sum(axis=1)
    is_true = np.zeros_like(score, bool)
    is_true[np.arange(n_cells), truth] = True
    group = np.repeat(np.arange(n_cells), n_options)
    return score.ravel(), group, is_true.ravel()


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_recovers_known_temperature(true_t: float) -> None:
    score, group, is_true = synthetic_cells(np.random.default_rng(1), 20000, 4, true_t)
    fitted = fit_temperature(score, group, is_true)
    assert fitted == pytest.approx(true_t, rel=0.05)
    # the fitted temperature is the NLL minimum
    best = temperature_nll(score, group, is_true, fitted)
    assert best <= temperature_nll(score, group, is_true, fitted * 1.2)
    assert best <= temperature_nll(score, group, is_true, fitted / 1.2)


def test_fit_handles_ragged_groups_and_unlabelled_cells() -> None:
    rng = np.random.default_rng(2)
    parts = [synthetic_cells(rng, 4000, m, 1.5) for m in (2, 3, 5)]
    score = np.concatenate([p[0] for p in parts])
    group = np.concatenate([p[1] + 10000 * i for i, p in enumerate(parts)])
    is_true = np.concatenate([p[2] for p in parts])
    # an unlabelled cell with an impossible option does not disturb the fit
    score = np.append(score, [-np.inf, 0.0])
    group = np.append(group, [99999, 99999])
    is_true = np.append(is_true, [False, False])
    assert fit_temperature(score, group, is_true) == pytest.approx(1.5, rel=0.07)


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no labelled option"):
        fit_temperature(np.zeros(3), np.zeros(3, int), np.zeros(3, bool))
    with pytest.raises(ValueError, match="probability 0"):
        fit_temperature(np.array([-np.inf, 0.0]), np.array([0, 0]), np.array([True, False]))
    with pytest.raises(ValueError, match="more than one true"):
        fit_temperature(np.zeros(2), np.array([0, 0]), np.array([True, True]))
    with pytest.raises(ValueError, match="temperature must be"):
        temperature_nll(np.zeros(2), np.array([0, 0]), np.array([True, False]), 0.0)
    with pytest.raises(ValueError, match="temperature must be"):
        temperature_nll(np.zeros(2), np.array([0, 0]), np.array([True, False]), -1.0)


def test_ece_on_hand_made_data() -> None:
    # bin (0.8, 0.867]: four predictions at 0.85, three right → |0.75 − 0.85| = 0.10
    # bin (0.267, 0.333]: two predictions at 0.3, one right → |0.5 − 0.3| = 0.20
    conf = np.array([0.85, 0.85, 0.85, 0.85, 0.3, 0.3])
    ok = np.array([1, 1, 1, 0, 1, 0], bool)
    assert expected_calibration_error(conf, ok) == pytest.approx((4 * 0.10 + 2 * 0.20) / 6)
    # perfectly calibrated: 1.0 always right, 0.0 never
    assert expected_calibration_error(np.array([1.0, 1.0, 0.0]), np.array([1, 1, 0], bool)) == 0
    # always-confident but half wrong
    assert expected_calibration_error(np.ones(4), np.array([1, 0, 1, 0], bool)) == 0.5


def test_reliability_diagram_and_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(2000)
    ok = rng.random(2000) < conf  # calibrated by construction
    diag = reliability_diagram(conf, ok)
    assert len(diag.count) == 15
    assert diag.count.sum() == 2000
    assert diag.ece < 0.05
    filled = diag.count > 0
    assert np.all(diag.confidence[filled] >= diag.edges[:-1][filled] - 1e-12)
    png = write_reliability_png(diag, tmp_path / "rel.png", title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        reliability_diagram(np.array([1.5]), np.array([True]))


def test_sparsification() -> None:
    ok = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    informative = np.where(ok, 0.1, 0.9)  # errors are the most uncertain
    curve = sparsification_curve(informative, ok)
    assert curve.accuracy[0] == pytest.approx(0.8)
    assert curve.accuracy_at(0.2) == pytest.approx(1.0)
    assert np.allclose(curve.accuracy, curve.oracle)
    # constant uncertainty: removing ties proportionally keeps the base accuracy
    flat = sparsification_curve(np.zeros(10), ok)
    assert np.allclose(flat.accuracy, 0.8)
    assert kept_accuracy(np.zeros(10), ok, 0.5) == pytest.approx(0.8)


def test_option_truth_and_fit_on_a_graph_shaped_problem() -> None:
    from solvers.calibration import fit_option_temperature, option_truth

    # nodes 0, 1 at t=0; 2, 3, 4 at t=1. 2 ← 0 (true), 3 ← 1 (true), 4 appears, but node 3's
    # true mother (1) has no candidate edge into it
    src = np.array([0, 1, 0, 1])
    dst = np.array([2, 2, 3, 4])
    mother = np.array([-2, -2, 0, 1, -1])
    option_true, labelled = option_truth(src, dst, mother)
    assert option_true.tolist() == [True, False, False, False] + [False] * 4 + [True]
    assert labelled.tolist() == [False, False, True, False, True]
    rng = np.random.default_rng(0)
    # many copies of a two-option cell whose true option wins with probability sigmoid(2 / 1.5)
    n = 4000
    p_true = 1 / (1 + np.exp(-2 / 1.5))
    truth_first = rng.random(n) < p_true
    edge_target = np.arange(n)  # one candidate mother per cell
    edge_score = np.zeros(n)  # option "that mother" scored 0
    appear_score = np.full(n, -2.0)  # option "appears" scored −2
    option_true = np.concatenate([truth_first, ~truth_first])
    t = fit_option_temperature(edge_score, appear_score, edge_target, option_true, np.ones(n, bool))
    assert t == pytest.approx(1.5, rel=0.1)


def test_prior_keeps_the_temperature_of_an_error_free_set_near_one() -> None:
    """Cells whose true option always scores highest: plain NLL drives T to its lower bound,
    the log-normal prior keeps it near 1; with many ambiguous cells the data win."""
    rng = np.random.default_rng(3)
    score, group, is_true = synthetic_cells(rng, 300, 4, 1.0)
    top = np.full(group.max() + 1, -np.inf)
    np.maximum.at(top, group, score)
    score = np.where(is_true, top[group] + 1.0, score)  # every true option wins by 1 nat
    plain = fit_temperature(score, group, is_true)
    loose = fit_temperature(score, group, is_true, prior_sigma=1.0)
    tight = fit_temperature(score, group, is_true, prior_sigma=0.1)
    assert plain < 0.05
    assert 0.1 < loose < tight < 1.0
    assert tight > 0.5
    score, group, is_true = synthetic_cells(np.random.default_rng(1), 20000, 4, 2.0)
    assert fit_temperature(score, group, is_true, prior_sigma=1.0) == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="prior_sigma"):
        fit_temperature(score, group, is_true, prior_sigma=0.0)

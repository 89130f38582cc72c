"""The logistic regression against an independent Newton solve, its AUC against counting pairs,
and explanations that add up to the score whatever the factors."""

import itertools

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from crm_api.scoring.explain import Factor, FactorKind, rules_part, weighted, whole_points
from crm_api.scoring.regression import auc, fit_logistic, logit_terms, probability_shares


def _newton(s: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Penalised maximum likelihood by Newton's method (IRLS): a different algorithm to the
    L-BFGS fit, converging quadratically to the same optimum."""
    x = np.column_stack([np.ones(len(y)), s])
    penalty = np.diag([0.0] + [l2] * s.shape[1])
    theta = np.zeros(x.shape[1])
    for _ in range(50):
        p = expit(x @ theta)
        gradient = x.T @ (y - p) - penalty @ theta
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        theta = theta + np.linalg.solve(hessian, gradient)
    return theta


def _synthetic(rows: int, seed: int) -> tuple[pl.DataFrame, pl.Series]:
    rng = np.random.default_rng(seed)
    calls = rng.poisson(3, rows).astype(float)
    director = rng.integers(0, 2, rows).astype(float)
    noise = rng.normal(0, 1, rows)
    z = -2.0 + 0.8 * calls + 1.5 * director + 0.0 * noise
    won = (rng.random(rows) < expit(z)).astype(int)
    frame = pl.DataFrame({"calls": calls, "director": director, "noise": noise})
    return frame, pl.Series("won", won)


def test_the_fit_is_the_penalised_maximum_likelihood() -> None:
    features, label = _synthetic(2_000, seed=7)
    fitted = fit_logistic(features, label, l2=1.0)
    assert fitted.converged
    x = features.to_numpy()
    s = (x - x.mean(axis=0)) / x.std(axis=0)
    expected = _newton(s, label.to_numpy().astype(float), 1.0)
    assert abs(fitted.intercept - expected[0]) < 1e-4
    assert np.allclose(fitted.weights, expected[1:], atol=1e-4)
    # The data's own story: calls and the title push towards a win, noise does nothing much.
    calls, director, noise = fitted.weights
    assert calls > 1
    assert director > 0.5
    assert abs(noise) < 0.15
    assert fitted.auc is not None
    assert fitted.auc > 0.8


def test_a_constant_feature_gets_no_weight() -> None:
    features, label = _synthetic(300, seed=3)
    fitted = fit_logistic(features.with_columns(pl.lit(1.0).alias("same")), label)
    assert fitted.weights[-1] == 0.0
    assert fitted.stds[-1] == 1.0


def test_auc_is_the_share_of_won_lost_pairs_ranked_right() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 60).astype(float)
    p = np.round(rng.random(60), 1)  # ties on purpose
    pairs = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for (a, ya), (b, yb) in itertools.product(zip(p, y, strict=True), repeat=2)
        if ya == 1 and yb == 0
    ]
    assert abs(auc(y, p) - sum(pairs) / len(pairs)) < 1e-12  # type: ignore[operator]
    assert auc(np.ones(5), np.random.default_rng(1).random(5)) is None


def test_probability_shares_keep_signs_and_sum_to_the_change() -> None:
    terms = logit_terms([3.0, 0.0, 1.0], [1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.2, 0.7, -0.4])
    base, shares = probability_shares(-0.5, terms)
    assert base == expit(-0.5)
    assert abs(base + sum(shares) - expit(-0.5 + sum(terms))) < 1e-12
    assert [np.sign(s) for s in shares] == [np.sign(t) for t in terms]
    assert probability_shares(0.3, [0.0, 0.0]) == (expit(0.3), [0.0, 0.0])


factor_points = st.lists(st.integers(-100, 100), max_size=12)
shares = st.lists(st.floats(-1, 1, allow_subnormal=False), max_size=8)


@settings(max_examples=300, deadline=None)
@given(factor_points, st.floats(0, 1), st.floats(0.001, 0.999), shares)
def test_whole_points_always_add_up_to_the_score(
    points: list[int], weight: float, base: float, raw_shares: list[float]
) -> None:
    rules = [Factor(f"r{i}", "rule", FactorKind.fit, p) for i, p in enumerate(points)]
    held, factors = rules_part(rules)
    assert 0 <= held <= 100
    factors = weighted(factors, 1 - weight)
    # Model shares scaled so base + shares is a probability, as probability_shares gives.
    total = sum(raw_shares)
    room = (1 - base) if total > 0 else base
    scale = room / abs(total) if abs(total) > 1e-9 else 0.0
    model = [Factor("baseline", "avg", FactorKind.baseline, base)]
    model += [Factor(f"m{i}", "m", FactorKind.model, s * scale) for i, s in enumerate(raw_shares)]
    factors += weighted(model, weight * 100)
    exact = (1 - weight) * held + weight * 100 * (base + total * scale)
    score, shown = whole_points(factors)
    assert sum(f["contribution"] for f in shown) == score
    assert abs(score - exact) <= 0.5 + 1e-9
    assert 0 <= score <= 100
    assert [abs(f["contribution"]) for f in shown] == sorted(
        (abs(f["contribution"]) for f in shown), reverse=True
    )


def test_points_beyond_the_bounds_show_as_a_limit_factor() -> None:
    rules = [Factor("a", "A", FactorKind.fit, 70), Factor("b", "B", FactorKind.fit, 50)]
    score, shown = whole_points(rules_part(rules)[1])
    assert score == 100
    assert [(f["key"], f["contribution"]) for f in shown] == [("a", 70), ("b", 50), ("limit", -20)]
    score, shown = whole_points(rules_part([Factor("c", "C", FactorKind.fit, -30)])[1])
    assert (score, [(f["key"], f["contribution"]) for f in shown]) == (
        0,
        [("c", -30), ("limit", 30)],
    )

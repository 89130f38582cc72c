"""L2-regularised logistic regression for lead scoring, and the attribution of one prediction
to its features. Pure functions: a Polars frame of features and a label in, numbers out.

Features are standardised (mean 0, standard deviation 1 over the training rows) so one penalty
suits them all and the weights compare; the intercept is not penalised. The fit maximises
    sum_i [y_i z_i - log(1 + e^z_i)] - (l2 / 2) * |w|^2,   z_i = b + w . s_i
by L-BFGS with the exact gradient (the objective is convex, so its optimum is the only one)."""

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit, log_expit

L2_PENALTY = 1.0


@dataclass(frozen=True)
class Fitted:
    means: list[float]
    stds: list[float]
    weights: list[float]
    intercept: float
    log_loss: float
    auc: float | None
    converged: bool
    iterations: int
    message: str


def fit_logistic(features: pl.DataFrame, label: pl.Series, l2: float = L2_PENALTY) -> Fitted:
    """Fit P(label = 1) = sigmoid(b + w . standardised features)."""
    x = features.to_numpy().astype(np.float64)
    y = label.to_numpy().astype(np.float64)
    means = x.mean(axis=0)
    stds = x.std(axis=0)
    stds[stds == 0] = 1.0  # a constant column stays 0 after centring: its weight goes to 0
    s = (x - means) / stds

    def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        b, w = theta[0], theta[1:]
        z = b + s @ w
        log_likelihood = float(np.sum(y * z + log_expit(-z)))
        residual = y - expit(z)
        gradient = np.concatenate(([residual.sum()], s.T @ residual - l2 * w))
        return -(log_likelihood - 0.5 * l2 * float(w @ w)), -gradient

    base_rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    start = np.zeros(x.shape[1] + 1)
    start[0] = np.log(base_rate / (1 - base_rate))
    found = minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-8})
    b, w = float(found.x[0]), found.x[1:]
    p = np.clip(expit(b + s @ w), 1e-15, 1 - 1e-15)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return Fitted(
        means=means.tolist(),
        stds=stds.tolist(),
        weights=w.tolist(),
        intercept=b,
        log_loss=log_loss,
        auc=auc(y, p),
        converged=bool(found.success),
        iterations=int(found.nit),
        message=str(found.message),
    )


def auc(y: NDArray[np.float64], p: NDArray[np.float64]) -> float | None:
    """The area under the ROC curve: the chance a won contact scores above a lost one (ties
    count half), by the Mann-Whitney rank sum; None without both classes."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = pl.Series(p).rank("average").to_numpy()
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def logit_terms(
    values: list[float], means: list[float], stds: list[float], weights: list[float]
) -> list[float]:
    """Each feature's share of the logit, measured from an average contact (all means)."""
    return [w * (v - m) / s for v, m, s, w in zip(values, means, stds, weights, strict=True)]


def probability_shares(intercept: float, terms: list[float]) -> tuple[float, list[float]]:
    """(P at the average contact, each feature's share of P - that): the difference is split
    in proportion to the logit terms, so the shares keep their signs and add up exactly."""
    base = float(expit(intercept))
    total = sum(terms)
    if total == 0:
        return base, [0.0 for _ in terms]
    moved = float(expit(intercept + total)) - base
    return base, [moved * term / total for term in terms]

"""A lead score and the factors it is made of, in whole points that add up to it exactly.

score = (1 - w) * R + w * 100 * P, where R is the rules' points held to 0..100, P the model's
probability and w the model's weight (0 without a model). The rules' part splits into each
rule's points (and a `limit` factor for what the 0..100 bounds took off); the model's part into
the probability of an average contact (`baseline`) and each feature's share of the rest
(regression.probability_shares). Rounded by largest remainder, so the whole points still sum
to the rounded score."""

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class FactorKind(StrEnum):
    fit = "fit"
    engagement = "engagement"
    limit = "limit"
    baseline = "baseline"
    model = "model"


@dataclass(frozen=True)
class Factor:
    key: str
    label: str
    kind: FactorKind
    exact: float
    value: float | None = None


def rules_part(factors: list[Factor]) -> tuple[float, list[Factor]]:
    """The rules' points held to 0..100, with a `limit` factor when the bounds took some off."""
    points = sum(f.exact for f in factors)
    held = min(100.0, max(0.0, points))
    if held != points:
        label = "Held to 100" if points > 100 else "Held to 0"
        factors = [*factors, Factor("limit", label, FactorKind.limit, held - points)]
    return held, factors


def weighted(factors: list[Factor], weight: float) -> list[Factor]:
    return [replace(f, exact=f.exact * weight) for f in factors]


def whole_points(factors: list[Factor]) -> tuple[int, list[dict[str, Any]]]:
    """(the score, its factors as dicts with whole `contribution`s summing to it), the largest
    first; factors that round to nothing are left out."""
    total = sum(f.exact for f in factors)
    score = min(100, max(0, math.floor(total + 0.5)))
    floors = [math.floor(f.exact) for f in factors]
    # Floors sum to at most the total, and the rounded total is at most one point per factor
    # above them, so the remainder is 0..n points, one to each of the largest fractions.
    remainder = min(len(factors), max(0, score - sum(floors)))
    by_fraction = sorted(range(len(factors)), key=lambda i: factors[i].exact - floors[i])
    for index in by_fraction[len(factors) - remainder :]:
        floors[index] += 1
    shown: list[dict[str, Any]] = [
        {
            "key": f.key,
            "label": f.label,
            "kind": f.kind.value,
            "contribution": points,
            "value": f.value,
        }
        for f, points in zip(factors, floors, strict=True)
        if points != 0
    ]
    shown.sort(key=lambda f: -abs(f["contribution"]))
    return score, shown

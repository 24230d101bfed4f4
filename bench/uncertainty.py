"""Paired bootstrap confidence intervals for "published vs best peer" on the benchmark.

The unit of resampling is the evaluation user: every draw picks n users with replacement (n =
number of evaluation users) and recomputes each metric exactly from ``metrics.per_user``
numerators and denominators as sum(num) / sum(den) over the drawn users. Both systems of a
comparison see the same drawn users in every draw (paired), so the interval reflects how much the
ratio depends on which users happened to be in the test window, not the (much larger) spread
between users.

Draw ``d`` uses row ``d`` of ``numpy.random.default_rng(seed).integers(0, n, size=(draws, n))``
over the users sorted by id, so a result depends only on the data, ``draws`` and ``seed`` (not
on the order of the input rows nor on the chunking used to bound memory).

Undefined draws: a draw in which either system's metric has a zero denominator (e.g. no held-out
tail pair among the drawn users), or in which both metrics are 0, has no ratio and is dropped; a
draw where only the peer scores 0 has ratio +inf and is kept (the published system is infinitely
better there), so a peer that often scores 0 gives an upper bound of +inf. Quantiles use the
"inverted_cdf" definition (an order statistic, no interpolation), which is what makes an
infinite draw safe to keep. If no draw is defined the interval is [nan, nan, nan].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.metrics import PER_USER_METRICS

__all__ = [
    "CI_METRICS",
    "PEER_EXCLUDE",
    "best_peer",
    "bootstrap_ratios",
    "ci_protocol",
    "ci_table",
    "paired_bootstrap_ratio",
]

CI_METRICS = PER_USER_METRICS
# The published system and its own ablations are not peers.
PEER_EXCLUDE = ("published", "content", "cooccurrence", "fusion")
# Cells of the (draws x users) weight matrix built at once: ~16 MB of int64 per chunk.
_CHUNK_CELLS = 2_000_000


def _columns(frame: pd.DataFrame, metric: str) -> tuple[str, str]:
    num, den = f"{metric}_num", f"{metric}_den"
    missing = [c for c in (num, den) if c not in frame.columns]
    if missing:
        raise KeyError(f"per-user frame has no column(s) {missing} for metric {metric!r}")
    return num, den


def _aligned(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> np.ndarray:
    """(n_users, 4) float matrix num_a, den_a, num_b, den_b over the users sorted by id."""
    if not a.index.is_unique or not b.index.is_unique:
        raise ValueError("per-user frames must have one row per user")
    if len(a.index) != len(b.index) or not a.index.isin(b.index).all():
        raise ValueError("a paired bootstrap needs both systems scored on the same users")
    order = a.index.sort_values()
    cols_a, cols_b = _columns(a, metric), _columns(b, metric)
    return np.column_stack(
        [
            a.loc[order, cols_a[0]].to_numpy(dtype=np.float64),
            a.loc[order, cols_a[1]].to_numpy(dtype=np.float64),
            b.loc[order, cols_b[0]].to_numpy(dtype=np.float64),
            b.loc[order, cols_b[1]].to_numpy(dtype=np.float64),
        ]
    )


def _ratios(sums: np.ndarray) -> np.ndarray:
    """Per-draw ratio from (draws, 4) sums; NaN where undefined, +inf where only b is 0."""
    num_a, den_a, num_b, den_b = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        metric_a = np.where(den_a > 0, num_a / den_a, np.nan)
        metric_b = np.where(den_b > 0, num_b / den_b, np.nan)
        ratio = metric_a / metric_b  # x/0 -> inf, 0/0 -> nan, nan propagates
    return ratio


def bootstrap_ratios(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, draws: int = 1000, seed: int = 0
) -> np.ndarray:
    """The ``draws`` bootstrap values of metric(a) / metric(b) (NaN for undefined draws).

    ``a`` and ``b`` are ``metrics.per_user`` frames of two systems on the same users. Each draw
    resamples the users with replacement; the user counts of a chunk of draws are a bincount
    weight matrix, multiplied once with the stacked numerators and denominators, so memory stays
    bounded (about 16 MB) whatever the number of users and draws.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    values = _aligned(a, b, metric)
    n = len(values)
    if n == 0:
        return np.full(draws, np.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(draws, _CHUNK_CELLS // n))
    out = np.empty(draws, dtype=np.float64)
    for start in range(0, draws, chunk):
        rows = min(chunk, draws - start)
        idx = rng.integers(0, n, size=(rows, n))
        flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
        weights = np.bincount(flat, minlength=rows * n).reshape(rows, n)
        out[start : start + rows] = _ratios(weights.astype(np.float64) @ values)
    return out


def _quantiles(ratios: np.ndarray, level: float) -> list[float]:
    kept = ratios[~np.isnan(ratios)]
    if kept.size == 0:
        return [math.nan, math.nan, math.nan]
    alpha = (1.0 - level) / 2.0
    qs = np.quantile(kept, [alpha, 0.5, 1.0 - alpha], method="inverted_cdf")
    return [float(q) for q in qs]


def paired_bootstrap_ratio(
    a: pd.DataFrame,
    b: pd.DataFrame,
    metric: str,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float]:
    """[low, median, high] of the paired bootstrap of metric(a) / metric(b) over users.

    ``level`` is the central coverage (0.95: the 2.5% and 97.5% quantiles). See the module
    docstring for the resampling and for draws with an undefined ratio (dropped) or a peer at 0
    (+inf, kept).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return _quantiles(bootstrap_ratios(a, b, metric, draws, seed), level)


def finite(value: object) -> float | None:
    """A finite float, or None for None, NaN, infinities, bools and non-numbers ("no value")."""
    if value is None or isinstance(value, bool | np.bool_):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def best_peer(
    systems: Mapping[str, Mapping[str, object]],
    metrics: Iterable[str] = CI_METRICS,
    exclude: Sequence[str] = PEER_EXCLUDE,
) -> dict[str, str]:
    """metric -> the peer system with the highest value (all these metrics: higher is better).

    Peers are the systems not in ``exclude`` (the published system and its ablations). Skipped
    systems (a ``"skipped"`` key), references that are not tuned peers (a ``"reference_only"``
    key giving why) and missing, NaN or non-numeric values are ignored; a tie goes
    to the system listed first. A metric no peer has a number for is left out.
    """
    out: dict[str, str] = {}
    for metric in metrics:
        best_name, best_value = None, -math.inf
        for name, row in systems.items():
            if (
                name in exclude
                or not isinstance(row, Mapping)
                or "skipped" in row
                or "reference_only" in row
            ):
                continue
            value = finite(row.get(metric))
            if value is not None and value > best_value:
                best_name, best_value = name, value
        if best_name is not None:
            out[metric] = best_name
    return out


def ci_table(
    per_user_by_system: Mapping[str, pd.DataFrame],
    best_peer: Mapping[str, str],
    metrics: Iterable[str] = CI_METRICS,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    published: str = "published",
) -> dict[str, list[float]]:
    """metric -> [low, median, high] of published / best_peer[metric] (``paired_bootstrap_ratio``).

    Every metric uses the same ``seed``, hence the same resampled user sets. A metric is left
    out when it has no best peer or either system has no per-user frame.
    """
    out: dict[str, list[float]] = {}
    pub = per_user_by_system.get(published)
    for metric in metrics:
        peer = best_peer.get(metric)
        if pub is None or peer is None or peer not in per_user_by_system:
            continue
        out[metric] = paired_bootstrap_ratio(
            pub, per_user_by_system[peer], metric, draws=draws, seed=seed, level=level
        )
    return out


def ci_protocol(draws: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, object]:
    """The ``ci_protocol`` block of metrics.json describing how ``ci`` was computed."""
    return {"draws": draws, "seed": seed, "level": level, "unit": "eval user"}

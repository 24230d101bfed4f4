"""Hyper-parameter search for the benchmark peers: a grid that widens until its best is interior.

A fixed grid whose best value sits on its edge says little: the peer may be under-tuned. `tune`
searches an initial grid, then extends every numeric axis whose best value is the smallest or
largest value tried (one step outward, by that axis' `Axis` rule, clamped to its hard bounds) and
searches again around the current best, until

* the best is interior on every widenable axis, or
* every axis whose best is on an edge sits on a hard bound (reported in ``at_bound``), or
* ``max_rounds`` widening rounds or ``max_evaluations`` evaluations are used up.

Search after the initial phase is coordinate-wise (one axis at a time, the others held at the
current best; sweeps repeat until a full sweep leaves the best unchanged), so a widened axis costs
a few evaluations instead of a new product grid. The initial phase is either the full product of
the grid (``strategy="grid"``) or the same coordinate sweeps from a start point
(``strategy="coordinate"``, for costly peers with many parameters).

Every point is evaluated at most once (results are cached by parameter values), the order of
evaluations is fixed by the grid, and ties are broken deterministically toward the cheaper point:
the one whose values come first per axis (widenable axes ascending, the others in the order
given), comparing axes in grid order. A NaN score counts as worse than any number.

``best_on_edge`` is True iff, for some numeric (widenable) parameter with more than one tried
value, the best value equals the smallest or largest value tried on that axis AND the rule could
still extend the axis past that edge (the edge is not a hard bound). A best value pinned to a hard
bound (beta = 0, neighbours = 1, factors at their cap) is not "on the edge": the parameter is
listed in ``at_bound`` instead. So ``best_on_edge`` is True only when the search stopped on its
budget (``max_rounds`` / ``max_evaluations``) with an axis still open.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

METRIC = "val_ndcg@10"


@dataclass(frozen=True)
class Axis:
    """How to widen one numeric parameter past the edge of its grid.

    scale="log": the next value outward is edge * factor (up) or edge / factor (down);
    scale="linear": edge + step / edge - step. Values are clamped to [lo, hi] (hard bounds: the
    axis is never extended past them) and rounded to integers when ``integer`` is set.
    """

    scale: Literal["log", "linear"] = "log"
    factor: float = 2.0
    step: float = 1.0
    lo: float = -math.inf
    hi: float = math.inf
    integer: bool = False

    def __post_init__(self) -> None:
        if self.scale == "log" and not self.factor > 1.0:
            raise ValueError("log axes need factor > 1")
        if self.scale == "linear" and not self.step > 0.0:
            raise ValueError("linear axes need step > 0")
        if self.lo > self.hi:
            raise ValueError("lo must be <= hi")

    def _clean(self, value: float) -> float | int:
        value = min(max(value, self.lo), self.hi)
        if self.integer:
            return round(value)
        return float(f"{value:.6g}")

    def outward(self, edge: float, direction: int) -> float | int | None:
        """The next value past ``edge`` (direction +1 up, -1 down); None if a bound stops it."""
        if direction > 0:
            raw = edge * self.factor if self.scale == "log" else edge + self.step
        else:
            raw = edge / self.factor if self.scale == "log" else edge - self.step
        value = self._clean(raw)
        if self.integer and value == edge:  # e.g. round(1 * 1.3) == 1: take the next integer
            value = self._clean(edge + direction)
        if (value - edge) * direction <= 0:
            return None
        return value

    def at_bound(self, edge: float, direction: int) -> bool:
        return self.outward(edge, direction) is None


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


class _Search:
    def __init__(
        self,
        grid: Mapping[str, Sequence],
        evaluate: Callable[[dict], float],
        axes: Mapping[str, Axis],
        max_evaluations: int,
        metric: str,
    ) -> None:
        unknown = set(axes) - set(grid)
        if unknown:
            raise ValueError(f"widening rules for parameters not in the grid: {sorted(unknown)}")
        self.names = list(grid)
        self.axes = dict(axes)
        self.values: dict[str, list] = {}
        for name, vals in grid.items():
            vals = list(dict.fromkeys(vals))
            if not vals:
                raise ValueError(f"empty grid for {name}")
            self.values[name] = sorted(vals) if name in self.axes else vals
        self.evaluate = evaluate
        self.max_evaluations = max_evaluations
        self.metric = metric
        self.cache: dict[tuple, float] = {}
        self.trials: list[dict] = []
        self.best: dict | None = None
        self.exhausted = False

    # ordering -----------------------------------------------------------------------------
    def _rank(self, params: Mapping[str, Any]) -> tuple:
        """Tie-break key: smaller is cheaper (value position per axis, axes in grid order)."""
        out = []
        for name in self.names:
            vals = self.values[name]
            v = params[name]
            out.append(sorted(vals).index(v) if name in self.axes else vals.index(v))
        return tuple(out)

    def _better(self, a: tuple[float, dict], b: tuple[float, dict]) -> bool:
        sa = a[0] if a[0] == a[0] else -math.inf
        sb = b[0] if b[0] == b[0] else -math.inf
        if sa != sb:
            return sa > sb
        return self._rank(a[1]) < self._rank(b[1])

    # evaluation ---------------------------------------------------------------------------
    def score(self, params: dict) -> float | None:
        """Cached evaluation; None (nothing run) once the evaluation budget is spent."""
        key = _key(params)
        if key in self.cache:
            return self.cache[key]
        if len(self.trials) >= self.max_evaluations:
            self.exhausted = True
            return None
        value = float(self.evaluate(dict(params)))
        self.cache[key] = value
        self.trials.append({**params, self.metric: value})
        if self.best is None or self._better(
            (value, params), (self.cache[_key(self.best)], self.best)
        ):
            self.best = dict(params)
        return value

    def _rebest(self) -> None:
        """Re-pick the best after axes grew (the tie-break ranks may have shifted)."""
        best = None
        for t in self.trials:
            p = {n: t[n] for n in self.names}
            if best is None or self._better((t[self.metric], p), (self.cache[_key(best)], best)):
                best = p
        self.best = best

    def product(self) -> None:
        for combo in itertools.product(*(self.values[n] for n in self.names)):
            if self.score(dict(zip(self.names, combo, strict=True))) is None:
                return

    def sweep_axis(self, name: str) -> None:
        assert self.best is not None
        base = dict(self.best)
        for v in self.values[name]:
            if self.score({**base, name: v}) is None:
                return

    def coordinate(self, start: dict | None = None) -> None:
        if self.best is None:
            mid = {n: self.values[n][(len(self.values[n]) - 1) // 2] for n in self.names}
            start = {**mid, **(start or {})}
            for n, v in start.items():  # a start value outside the grid joins its axis
                if n in self.values and v not in self.values[n]:
                    vals = [*self.values[n], v]
                    self.values[n] = sorted(vals) if n in self.axes else vals
            if self.score(start) is None:
                return
        while not self.exhausted:
            before = dict(self.best)  # type: ignore[arg-type]
            for name in self.names:
                self.sweep_axis(name)
                if self.exhausted:
                    return
            if self.best == before:
                return

    # edges --------------------------------------------------------------------------------
    def tried(self, name: str) -> list:
        return sorted({t[name] for t in self.trials})

    def edges(self) -> tuple[list[tuple[str, int]], list[str]]:
        """(open edges to widen as (param, direction), params pinned at a hard bound)."""
        open_, bound = [], []
        assert self.best is not None
        for name in self.names:
            axis = self.axes.get(name)
            if axis is None:
                continue
            tried = self.tried(name)
            b = self.best[name]
            dirs = []
            if b == tried[0]:
                dirs.append(-1)
            if b == tried[-1]:
                dirs.append(+1)
            if not dirs:
                continue
            blocked = [d for d in dirs if axis.at_bound(b, d)]
            open_ += [(name, d) for d in dirs if d not in blocked]
            if blocked and len(tried) > 1:  # one tried value is no evidence of a pinned best
                bound.append(name)
        return open_, bound


def tune(
    grid: Mapping[str, Sequence],
    evaluate: Callable[[dict], float],
    axes: Mapping[str, Axis] | None = None,
    *,
    strategy: Literal["grid", "coordinate"] = "grid",
    start: Mapping[str, Any] | None = None,
    max_rounds: int = 4,
    max_evaluations: int = 40,
    metric: str = METRIC,
) -> dict[str, Any]:
    """Search ``grid`` (param -> values) for the params maximising ``evaluate``, widening edges.

    ``axes`` maps the widenable numeric params to their `Axis` rule; params without one
    (categorical, or numeric but fixed) are searched only over the given values. ``start``
    (coordinate strategy) defaults to the lower-middle value of every axis.

    Returns ``{"grid": {param: all values tried, sorted}, "best": params, "best_on_edge": bool,
    "at_bound": [params whose best is a hard bound], "trials": [{**params, metric: value}] in
    evaluation order, "evaluations": n, "rounds": widening rounds run, "seconds": wall time}``.
    See the module docstring for the exact meaning of ``best_on_edge``.
    """
    if max_evaluations < 1:
        raise ValueError("max_evaluations must be >= 1")
    t0 = time.perf_counter()
    s = _Search(grid, evaluate, axes or {}, max_evaluations, metric)
    if strategy == "grid":
        s.product()
    elif strategy == "coordinate":
        s.coordinate(dict(start) if start else None)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")

    rounds = 0
    while not s.exhausted and rounds < max_rounds:
        open_, _ = s.edges()
        if not open_:
            break
        rounds += 1
        for name, direction in open_:
            edge = s.values[name][0] if direction < 0 else s.values[name][-1]
            if edge != s.best[name]:  # an untried listed value lies beyond: sweep it first
                continue
            new = s.axes[name].outward(edge, direction)
            if new is not None and new not in s.values[name]:
                s.values[name] = sorted([*s.values[name], new])
        s._rebest()
        for name in dict.fromkeys(n for n, _ in open_):
            s.sweep_axis(name)
            if s.exhausted:
                break
        if not s.exhausted:
            s.coordinate()

    s._rebest()
    open_, bound = s.edges()
    on_edge = any(len(s.tried(name)) > 1 for name, _ in open_)
    return {
        "grid": {n: s.tried(n) for n in s.names},
        "best": dict(s.best) if s.best is not None else {},
        "best_on_edge": on_edge,
        "at_bound": bound,
        "trials": s.trials,
        "evaluations": len(s.trials),
        "rounds": rounds,
        "seconds": round(time.perf_counter() - t0, 3),
    }

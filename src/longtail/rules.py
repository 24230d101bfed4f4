"""A shop's business rules: declared once in the landing, validated at ingest, applied at scoring.

The file is `rules/rules.yaml` (or `.yml`, `.json`) beside `events/` and `items/`; optional. It
is parsed and validated before ingest writes anything, so a bad file stops the night with an error
naming the file, the line and the key. The validated rules go into the ingest run record, which
the score, similar_items and publish stages read, so every stage of a night applies the same ones.

Pure (numpy, pandas, pydantic, PyYAML): the selection helpers run inside Spark's scoring tasks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from longtail import columns as C
from longtail.errors import PermanentError
from longtail.runs import rank_in_group

FOLDER = "rules"
FILE_NAMES = ("rules.yaml", "rules.yml", "rules.json")
# Key of the ingest run record holding the validated rules (absent when the landing has none).
RECORD_KEY = "rules"


class RulesError(PermanentError, ValueError):
    """The rules file does not parse or validate; the message names the file, line and key."""


def _as_text(value: Any) -> Any:
    """Ids and names are text in the landing; a bare YAML number (123) means the same id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Name = Annotated[str, BeforeValidator(_as_text), Field(strict=True, min_length=1)]
Cap = Annotated[int, Field(strict=True, ge=1)]


class Exclude(BaseModel):
    """Never recommended (nor shown as a similar item): exact matches of the landing's values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_ids: tuple[Name, ...] = ()
    categories: tuple[Name, ...] = ()
    brands: tuple[Name, ...] = ()


class Boost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: Name
    weight: Annotated[float, Field(strict=True, gt=0, le=1)]


class Rules(BaseModel):
    """The validated rules file; `{}` is valid and changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude: Exclude = Exclude()
    max_per_category: Cap | None = None
    max_per_brand: Cap | None = None
    boost: tuple[Boost, ...] = ()

    @field_validator("boost")
    @classmethod
    def _distinct_boosts(cls, boost: tuple[Boost, ...]) -> tuple[Boost, ...]:
        seen: set[str] = set()
        for b in boost:
            if b.item_id in seen:
                raise ValueError(f"item_id {b.item_id!r} is boosted more than once")
            seen.add(b.item_id)
        return boost

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        text = json.dumps(self.to_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- parsing --------------------------------------------------------------------------------


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node along a pydantic error location (None when unknown)."""
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part >= 0:
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _no_repeated_keys(node: yaml.Node | None, path: str) -> None:
    """A key given twice would silently keep the last value (YAML's rule): an error here."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                line = key.start_mark.line + 1
                raise RulesError(f"{path}: line {line}: {key.value}: given more than once")
            seen.add(key.value)
            _no_repeated_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _no_repeated_keys(child, path)


def _key(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(text: str, path: str) -> Rules:
    """The rules in text (YAML, or JSON when path ends in .json); RulesError naming path, line
    and key on a syntax error, an unknown key or a bad value."""
    node = None
    try:
        if path.lower().endswith(".json"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RulesError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
        else:
            data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # JSON is YAML: marks for the lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"{path}: {where}not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RulesError(
            f"{path}: line 1: expected a mapping of rules (exclude, max_per_category, "
            f"max_per_brand, boost), got {got}"
        )
    _no_repeated_keys(node, path)
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            line = _line_of(node, loc)
            where = f"line {line}: " if line is not None else ""
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}{_key(loc)}: {msg}")
        raise RulesError(f"{path}: " + "; ".join(problems)) from exc


def from_record(record: dict | None) -> Rules | None:
    """The rules a run recorded (`RECORD_KEY` of the ingest record), or None."""
    if not record or record.get(RECORD_KEY) is None:
        return None
    return Rules.model_validate(record[RECORD_KEY]["rules"])


def record_entry(rules: Rules, path: str) -> dict[str, Any]:
    return {"file": path, "fingerprint": rules.fingerprint(), "rules": rules.to_record()}


# --- per-item arrays --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRules:
    """The rules as arrays in an item space's order: what the final-list selection reads.

    caps: (group code per item, -1 = no group; at most this many per group in one list).
    boost: weight per item in [0, 1], 0 = not boosted; None when no item is boosted.
    """

    caps: tuple[tuple[np.ndarray, int], ...] = ()
    boost: np.ndarray | None = None


def _column(items: pd.DataFrame, name: str) -> pd.Series:
    if name not in items:
        return pd.Series([None] * len(items), index=items.index, dtype=object)
    return items[name]


def allowed(items: pd.DataFrame, rules: Rules | None) -> np.ndarray:
    """Per item row: available (`available` column, absent = true) and not excluded by rules."""
    ok = _column(items, C.AVAILABLE).fillna(True).astype(bool).to_numpy()
    if rules is None:
        return ok
    ex = rules.exclude
    ok &= ~items[C.ITEM_ID].astype(str).isin(ex.item_ids).to_numpy()
    ok &= ~_column(items, C.CATEGORY).isin(ex.categories).to_numpy()
    ok &= ~_column(items, C.BRAND).isin(ex.brands).to_numpy()
    return ok


def item_rules(items: pd.DataFrame, rules: Rules | None) -> ItemRules | None:
    """Caps and boosts per item row of items (item_id, category, brand); None if neither."""
    if rules is None:
        return None
    caps = []
    for column, cap in ((C.CATEGORY, rules.max_per_category), (C.BRAND, rules.max_per_brand)):
        if cap is not None:
            values = _column(items, column)
            codes, _ = pd.factorize(values.where(values.notna(), None), sort=True)
            caps.append((codes.astype(np.int64), int(cap)))
    boost = None
    if rules.boost:
        weights = {b.item_id: b.weight for b in rules.boost}
        ids = items[C.ITEM_ID].astype(str)
        boost = ids.map(weights).fillna(0.0).to_numpy(dtype=np.float64)
    if not caps and boost is None:
        return None
    return ItemRules(caps=tuple(caps), boost=boost)


# --- selection --------------------------------------------------------------------------------


def boosted(scores: np.ndarray, weights: np.ndarray, lists: np.ndarray | None = None) -> np.ndarray:
    """score + weight x (max - min of the user's candidate scores).

    Scale-free, as ranker scores have no fixed scale: weight 1 lifts the user's lowest candidate
    to the top score, weight 0.5 by half the spread; unboosted items keep their scores. `lists`
    (codes 0, 1, ...: whose candidate each row is) takes each user's own spread; None: one user.
    """
    if not len(scores):
        return scores
    if lists is None:
        return scores + weights * float(np.max(scores) - np.min(scores))
    high = np.full(int(lists.max()) + 1, -np.inf)
    low = np.full(len(high), np.inf)
    np.maximum.at(high, lists, scores)
    np.minimum.at(low, lists, scores)
    return scores + weights * (high - low)[lists]


def within_caps(
    scores: np.ndarray,
    groups: Sequence[np.ndarray],
    caps: Sequence[int],
    lists: np.ndarray | None = None,
) -> np.ndarray:
    """Positions kept when candidates are taken in score order (ties: lower position first) and
    one is dropped when its group of any cap already holds that cap's number; returned sorted.
    `lists` (codes 0, 1, ...) splits the rows into users' candidates, each capped on its own;
    None: one user.

    Any list chosen from the kept candidates holds every cap, whatever order picks them. With one
    cap a candidate is dropped exactly when its rank within its group, in score order, reaches the
    cap (what the group already holds is its first `cap` candidates), so that case is one sort
    for a whole block of users, not a loop over every candidate.
    """
    n = len(scores)
    lists = np.zeros(n, np.int64) if lists is None else np.asarray(lists, np.int64)
    order = np.lexsort((np.arange(n), -scores, lists))
    if len(caps) == 1:
        code = np.maximum(np.asarray(groups[0], np.int64)[order], -1)  # -1: never capped
        span = int(code.max(initial=0)) + 2
        keep = (code < 0) | (rank_in_group(lists[order] * span + code + 1) < caps[0])
        return np.sort(order[keep])
    # Several caps: a candidate dropped by one cap does not count towards the others, so each
    # decision depends on the ones before it; plain lists keep the loop cheap.
    codes = [np.asarray(g)[order].tolist() for g in groups]
    owner = lists[order].tolist()
    counts: list[dict[tuple[int, int], int]] = [{} for _ in caps]
    keep = []
    for at, i in enumerate(order.tolist()):
        mine = [(owner[at], c[at]) for c in codes]
        if any(
            key[1] >= 0 and seen.get(key, 0) >= cap
            for key, cap, seen in zip(mine, caps, counts, strict=True)
        ):
            continue
        for key, seen in zip(mine, counts, strict=True):
            if key[1] >= 0:
                seen[key] = seen.get(key, 0) + 1
        keep.append(i)
    return np.sort(np.asarray(keep, dtype=np.int64))


def apply(
    rules: ItemRules, scores: np.ndarray, items: np.ndarray, lists: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (scores, item positions; `lists`: whose, as in `within_caps`) -> (boosted
    scores, positions within the caps). The final lists are chosen from those positions only."""
    if rules.boost is not None:
        scores = boosted(scores, rules.boost[items], lists)
    if not rules.caps:
        return scores, np.arange(len(scores), dtype=np.int64)
    groups = [codes[items] for codes, _ in rules.caps]
    return scores, within_caps(scores, groups, [cap for _, cap in rules.caps], lists)


class CapCounter:
    """Group counts of one list, for adding items after the ranked part (the popularity fill)."""

    def __init__(self, rules: ItemRules | None, items: Sequence[int] = ()) -> None:
        self._caps = rules.caps if rules is not None else ()
        self._seen: list[dict[int, int]] = [{} for _ in self._caps]
        for j in items:
            self._count(int(j))

    def _count(self, j: int) -> None:
        for (codes, _), seen in zip(self._caps, self._seen, strict=True):
            if codes[j] >= 0:
                seen[int(codes[j])] = seen.get(int(codes[j]), 0) + 1

    def take(self, j: int) -> bool:
        """True (and counted) when item position j fits under every cap."""
        for (codes, cap), seen in zip(self._caps, self._seen, strict=True):
            if codes[j] >= 0 and seen.get(int(codes[j]), 0) >= cap:
                return False
        self._count(j)
        return True

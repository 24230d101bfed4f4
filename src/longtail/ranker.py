"""The LightGBM lambdarank fusion ranker, trained on a temporal window.

Features come from everything before the window start S, labels from the new (user, item) pairs
in [S, T): the model learns how to weigh ALS, text similarity, co-occurrence, popularity and
recency the way the shop's recent behaviour rewards them. Pure pandas/numpy + lightgbm; trained
on the driver (single node), applied inside Spark.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail.config import RankerConfig
from longtail.evaluation.ranking import ndcg_grouped_blocks
from longtail.evaluation.split import new_pairs
from longtail.fusion import (
    FEATURES,
    CandidateCounts,
    ItemSpace,
    blend_score,
    build_retrieval,
    candidates,
    choose_spread,
    feature_matrix,
    frame_features,
)
from longtail.label_window import pick_start, window_days
from longtail.retrieval import EXACT_MAX_ITEMS


def label_window_start(
    events: pd.DataFrame, end: pd.Timestamp, min_days: int, max_days: int, min_pairs: int
) -> pd.Timestamp:
    """The latest day-aligned start S (>= min_days before end) whose window [S, end) holds at
    least min_pairs new (user, item) pairs, or end - max_days. Deterministic in the data.

    pandas reference of what train_ranker computes in Spark (`longtail.label_window`)."""
    ts = pd.to_datetime(events[C.TS], utc=True)
    counts = {}
    for days in window_days(min_days, max_days):
        start = end - pd.Timedelta(days=days)
        pairs = new_pairs(events[ts < start], events[(ts >= start) & (ts < end)])
        counts[days] = sum(len(v) for v in pairs.values())
    return pick_start(end, min_days, max_days, min_pairs, counts)


def sample_users(users: list[str], max_users: int, seed: int) -> list[str]:
    """A deterministic pseudo-random subset: the same users for the same data and seed."""
    key = lambda u: hashlib.sha1(f"{seed}:{u}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(users, key=key)[:max_users])


def validation_rows(frame: pd.DataFrame, valid_share: float, seed: int) -> np.ndarray:
    """Rows of the held-out validation users (a seeded `valid_share` of the frame's users): the
    ones fit stops early on and reports, and train_ranker chooses the exposure penalty on."""
    users = frame[C.USER_ID].drop_duplicates().tolist()
    held = set(sample_users(users, int(len(users) * valid_share), seed + 1))
    return frame[C.USER_ID].isin(held).to_numpy()


def choose_spread_strength(
    ts: TrainingSet, scorer: Any, cfg: RankerConfig, n: int, tail_target: float, new_share: float
) -> dict[str, Any]:
    """The exposure-penalty strength (fusion.choose_spread) on the validation users, scored by
    the published scorer (booster, single feature or blend); strength 0 without such users."""
    valid = ts.frame[validation_rows(ts.frame, cfg.valid_share, cfg.seed)]
    if valid.empty:
        return {"strength": 0.0, "users": 0, "reason": "no validation users"}
    features = frame_features(ts.frame)
    scores = (
        scorer.predict(feature_matrix(valid, features))
        if scorer is not None
        else blend_score(valid)
    )
    best, values = choose_spread(
        valid.reset_index(drop=True),
        np.asarray(scores, np.float64),
        tuple(float(v) for v in cfg.spread_strengths),
        n,
        tail_target,
        new_share,
    )
    return {
        "strength": best,
        "users": int(valid[C.USER_ID].nunique()),
        "valid_ndcg@10": {str(k): v for k, v in values.items()},
    }


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # candidates with features, label, sorted by user
    groups: np.ndarray
    candidate_recall: float  # share of labelled pairs that the candidates contain
    n_users: int
    stats: dict[str, Any] = field(default_factory=dict)


def training_set(
    space: ItemSpace,
    users: pd.DataFrame,
    truth: dict[str, set[str]],
    counts: CandidateCounts,
    block: int = 256,
    exact_max_items: int = EXACT_MAX_ITEMS,
) -> TrainingSet:
    """Candidates with features and labels for the users of `truth`.

    users: one row per user as `user_histories.fusion_users` (or `fusion.user_frame`) gives;
    rows of users outside truth are ignored. Scored in user order, in blocks, like score does.
    """
    users = users[users[C.USER_ID].isin(truth)].sort_values(C.USER_ID, kind="stable")
    index = space.index
    retrieval = build_retrieval(space, counts, exact_max_items)
    parts = []
    for start in range(0, len(users), block):
        batch = users.iloc[start : start + block].reset_index(drop=True)
        parts.append(candidates(batch, space, counts, index, retrieval))
    cands = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    items = space.item_ids[cands["item_idx"].to_numpy()] if len(cands) else np.array([])
    label = np.fromiter(
        (i in truth.get(u, ()) for u, i in zip(cands.get(C.USER_ID, []), items, strict=True)),
        dtype=bool,
        count=len(cands),
    )
    cands = cands.assign(label=label.astype(np.int32))
    hit = int(label.sum())
    total = sum(len(v) for v in truth.values())
    positive_users = cands.groupby(C.USER_ID)["label"].transform("max") > 0
    cands = cands[positive_users].sort_values([C.USER_ID, "item_idx"], kind="stable")
    groups = cands.groupby(C.USER_ID, sort=True).size().to_numpy()
    return TrainingSet(
        frame=cands.reset_index(drop=True),
        groups=groups,
        candidate_recall=hit / total if total else float("nan"),
        n_users=len(groups),
    )


def fit(ts: TrainingSet, settings: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """LightGBM lambdarank with a held-out share of users for early stopping and reporting.

    settings: `RankerConfig.lightgbm()`, or some of it (RankerConfig's defaults for the rest).
    """
    import lightgbm as lgb

    params = {**RankerConfig.default_lightgbm(), **settings}
    is_valid = validation_rows(ts.frame, params["valid_share"], seed)
    tr, va = ts.frame[~is_valid], ts.frame[is_valid]
    g_tr = tr.groupby(C.USER_ID, sort=True).size().to_numpy()
    g_va = va.groupby(C.USER_ID, sort=True).size().to_numpy()
    features = frame_features(ts.frame)
    x_tr, x_va = feature_matrix(tr, features), feature_matrix(va, features)
    model = lgb.LGBMRanker(
        objective="lambdarank",
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        num_leaves=params["num_leaves"],
        min_child_samples=params["min_child_samples"],
        colsample_bytree=params["colsample_bytree"],
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=params["num_threads"],
        verbose=-1,
    )
    callbacks = (
        [lgb.early_stopping(params["early_stopping_rounds"], verbose=False)] if len(g_va) else []
    )
    model.fit(
        x_tr,
        tr["label"].to_numpy(),
        group=g_tr,
        eval_X=(x_va,) if len(g_va) else None,
        eval_y=(va["label"].to_numpy(),) if len(g_va) else None,
        eval_group=[g_va] if len(g_va) else None,
        eval_at=[10],
        callbacks=callbacks,
    )
    booster = model.booster_
    report: dict[str, Any] = {
        "train_users": len(g_tr),
        "valid_users": len(g_va),
        "rows": len(ts.frame),
        "positives": int(ts.frame["label"].sum()),
        "cold_positives": int(ts.frame.loc[ts.frame["is_cold"] > 0, "label"].sum()),
        "best_iteration": int(model.best_iteration_ or booster.current_iteration()),
        "importance_gain": dict(
            zip(features, map(float, booster.feature_importance("gain")), strict=True)
        ),
    }
    if len(g_va):
        y_va = va["label"].to_numpy()
        model_u = ndcg_grouped_blocks(booster.predict(x_va), y_va, g_va, 10)
        single_u = {
            f: ndcg_grouped_blocks(va[f].to_numpy(np.float64), y_va, g_va, 10) for f in features
        }
        singles = {f: float(np.mean(v)) for f, v in single_u.items()}
        best = max(singles, key=lambda f: singles[f])
        report["valid_ndcg@10"] = float(np.mean(model_u))
        report["valid_ndcg@10_single_features"] = singles
        report["best_single_feature"] = best
        report["valid_ndcg@10_gap_se"] = paired_se(single_u[best], model_u)
    return booster, report


# Below these the trained model is not trusted: the best single feature ranks instead.
MIN_TRAIN_USERS = 50
MIN_TREES = 5
# The best single feature replaces the model only when it leads by more than this many
# standard errors of the per-user difference (one-sided 5%): a lead within the validation
# users' noise (0.0004 of 0.156 over 113 users) flipped one shop's nights between the two on
# machines that add floating point in another order.
FALLBACK_Z = 1.645


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of mean(a - b) over paired values (0 with fewer than two pairs)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def fallback(report: dict[str, Any]) -> tuple[str, str] | None:
    """(feature, reason) when the fitted model should give way to its best single feature.

    Too few training users or trees say the window held too little to learn from; a validation
    ndcg below one of the model's own inputs by more than FALLBACK_Z standard errors of the
    paired difference (`valid_ndcg@10_gap_se`; none recorded: any lead) says what it learned
    does not transfer. None when the model stays, or when there is no validation result to pick
    a feature by.
    """
    best = report.get("best_single_feature")
    if best is None:
        return None
    if report["train_users"] < MIN_TRAIN_USERS:
        return best, f"{report['train_users']} training users < {MIN_TRAIN_USERS}"
    if report["best_iteration"] < MIN_TREES:
        return best, f"best iteration {report['best_iteration']} < {MIN_TREES} trees"
    single = report["valid_ndcg@10_single_features"][best]
    margin = FALLBACK_Z * float(report.get("valid_ndcg@10_gap_se") or 0.0)
    if single - report["valid_ndcg@10"] > margin:
        return best, (
            f"validation ndcg@10 {report['valid_ndcg@10']:.4f} below {best}'s {single:.4f} "
            f"by more than {FALLBACK_Z} standard errors ({margin:.4f})"
        )
    return None


@dataclass(frozen=True)
class SingleFeature:
    """A scorer with the booster's `predict` that ranks by one feature column."""

    column: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, self.column]


def load_booster(model_text: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=model_text)


def load_scorer(model_text: str, meta: dict[str, Any]) -> Any:
    """What scores candidates for a published ranker: its single feature when it fell back,
    the booster otherwise (None when no model was trained: the blend ranks)."""
    feature = meta.get("single_feature")
    if feature is not None:
        return SingleFeature(list(meta.get("features", FEATURES)).index(feature))
    return load_booster(model_text) if model_text.strip() else None

"""The champion/challenger gate: whether a newly registered version may serve, with every figure it rests on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from globolatte_dagster.lib.json_io import to_jsonable
from globolatte_dagster.lib.recommend.metrics import HIT_RATE

SERVED_METRIC = HIT_RATE  # the champion candidate's hold-out hit rate@K
BASELINE_METRIC = f"best_baseline_{HIT_RATE}"


@dataclass
class GateDecision:
    """The champion/challenger decision for one region, with every figure it rests on."""

    promote: bool
    forced: bool
    reasons: list[str]
    window: list[str] | None
    candidate: str
    challenger: float | None
    best_baseline: str | None
    best_baseline_value: float | None
    champion: float | None
    champion_version: str | None
    margin: float
    comparison: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def gate(
    challenger_metrics: dict[str, Any],
    champion_value: float | None,
    *,
    champion_version: str | None = None,
    margin: float = 0.01,
    force: bool = False,
    comparison: str = "no champion yet",
) -> GateDecision:
    """Promote a new version unless it serves worse than the best baseline, or than the champion by more than margin.

    `challenger_metrics`: the tournament's figures (`hit_rate_at_K` of the candidate it serves and of the best
    baseline, on its hold-out). `champion_value`: the current champion's hit rate on the same hold-out
    (`comparison` says how it was obtained), None without a champion. A version without a hold-out (a region
    with one landed day) is promoted while there is no champion: popularity is better than nothing.
    `force` promotes whatever the figures say, and the decision says so.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    candidate = str(challenger_metrics.get("champion") or "unknown")
    served = challenger_metrics.get(SERVED_METRIC)
    baseline = challenger_metrics.get(BASELINE_METRIC)
    baseline_name = challenger_metrics.get("best_baseline")
    window = challenger_metrics.get("holdout_days")
    reasons: list[str] = []
    ok = True
    if served is None:
        reasons.append(
            f"no hold-out to judge on ({challenger_metrics.get('sales_days', '?')} landed sales day(s)): serves {candidate}"
        )
        if champion_version is not None:
            ok = False
            reasons.append(f"champion {champion_version} keeps serving until this version can be judged")
    else:
        served, baseline = float(served), float(baseline)
        if served + 1e-12 >= baseline:
            reasons.append(
                f"serves {candidate} at {served:.4f}, not below the best baseline {baseline_name} ({baseline:.4f})"
            )
        else:
            ok = False
            reasons.append(
                f"serves {candidate} at {served:.4f}, below the best baseline {baseline_name} ({baseline:.4f})"
            )
        if champion_value is None:
            reasons.append(
                "no champion yet"
                if champion_version is None
                else f"champion {champion_version}: {comparison}"
            )
        elif served >= champion_value - margin:
            reasons.append(
                f"not worse than champion {champion_version} by more than {margin}: {served:.4f} vs "
                f"{champion_value:.4f} ({comparison})"
            )
        else:
            ok = False
            reasons.append(
                f"worse than champion {champion_version} by more than {margin}: {served:.4f} vs "
                f"{champion_value:.4f} ({comparison})"
            )
    if force and not ok:
        reasons.append("promotion FORCED by config despite the reasons above")
    elif force:
        reasons.append("promotion forced by config (the gate would have promoted anyway)")
    return GateDecision(
        promote=ok or force,
        forced=force,
        reasons=reasons,
        window=list(window) if window else None,
        candidate=candidate,
        challenger=None if served is None else float(served),
        best_baseline=baseline_name,
        best_baseline_value=None if baseline is None else float(baseline),
        champion=champion_value,
        champion_version=champion_version,
        margin=margin,
        comparison=comparison,
    )

"""PNG plots for asset metadata (Markdown with a base64 data URI), drawn on matplotlib Figures (no pyplot).

matplotlib and scikit-learn are imported where a plot is drawn: every run worker loads the definitions
(this module among them), and most runs, ingestion ones, draw no plot.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def markdown_image(data: bytes, alt: str = "plot") -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A Markdown table (no tabulate dependency)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v).replace("|", "/")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def segments_plot(matrix: np.ndarray, segments: np.ndarray, profiles: pd.DataFrame, seed: int = 0) -> bytes:
    """Customers on the first two principal components, coloured by segment; serving mix per segment."""
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    if len(matrix) >= 2 and matrix.shape[1] >= 2:
        xy = PCA(n_components=2, random_state=seed).fit_transform(matrix)
        for s in np.unique(segments):
            m = segments == s
            ax1.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.5, label=f"segment {s}")
        ax1.legend(markerscale=3, fontsize=8, loc="best")
    ax1.set_title("customers (first two principal components)")
    ax1.set_xlabel("PC 1")
    ax1.set_ylabel("PC 2")
    seg = profiles["segment"].astype(str)
    bottom = np.zeros(len(profiles))
    for col in [c for c in profiles.columns if c.endswith("_share") and c not in ("weekend_share",)]:
        ax2.bar(seg, profiles[col], bottom=bottom, label=col.removesuffix("_share"))
        bottom += profiles[col].to_numpy()
    ax2.set_title("what each segment buys (share of its visit days' products, by serving)")
    ax2.set_xlabel("segment")
    ax2.legend(fontsize=8)
    return png(fig)


def tournament_plot(table: pd.DataFrame, per_day: pd.DataFrame | None, k: int = 3) -> bytes:
    """Hit rate@k of every candidate with its 95% interval, per list; and the top list per hold-out day."""
    from matplotlib.figure import Figure

    lists = list(dict.fromkeys(table["list"]))
    fig = Figure(figsize=(5.5 * (len(lists) + 1), 4))
    axes = fig.subplots(1, len(lists) + 1)
    for ax, name in zip(axes, lists, strict=False):
        rows = table[table["list"] == name]
        values = rows[f"hit_rate_at_{k}"].to_numpy(dtype=float)
        bounds = np.array([[float(x) for x in ci.split(" .. ")] for ci in rows["ci_95"]])
        err = np.abs(bounds.T - values)
        colors = ["C3" if c == "yes" else "C0" for c in rows["champion"]]
        ax.bar(rows["candidate"], values, yerr=err, capsize=4, color=colors)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name} list: hit rate@{k} (95% interval; red = champion)")
        ax.tick_params(axis="x", rotation=30)
    ax = axes[-1]
    if per_day is not None and len(per_day):
        for col in [c for c in per_day.columns if c not in ("day", "buyers")]:
            ax.plot(pd.to_datetime(per_day["day"]), per_day[col], marker="o", label=col)
        ax.legend(fontsize=8)
    ax.set_title("top list per hold-out day")
    ax.tick_params(axis="x", rotation=45)
    return png(fig)


def performance_plot(table: pd.DataFrame, k: int = 3, rolling_days: int = 7) -> bytes:
    """Realised hit rate@k per day of each list with its baselines; the champion's version changes and alerts."""
    from matplotlib.figure import Figure

    lists = [lst for lst in ("top", "discover") if (table["list"] == lst).any()]
    fig = Figure(figsize=(11, 3.6 * max(len(lists), 1)))
    axes = np.atleast_1d(fig.subplots(max(len(lists), 1), 1, squeeze=False)[:, 0])
    for ax, lst in zip(axes, lists, strict=False):
        part = table[(table["list"] == lst) & (table["customers"] > 0)].sort_values("day")
        days = pd.to_datetime(part["day"])
        hit = f"hit_rate_at_{k}"
        for col, label, style in (
            (hit, "served lists", "-o"),
            (f"repeat_{hit}", "repeat", "--"),
            (f"popularity_{hit}", "popularity", ":"),
        ):
            if part[col].notna().any():
                ax.plot(days, part[col], style, markersize=3, label=label)
        pooled = (part[hit] * part["customers"]).rolling(rolling_days, min_periods=1).sum() / part[
            "customers"
        ].rolling(rolling_days, min_periods=1).sum()
        ax.plot(days, pooled, color="black", linewidth=2, label=f"served, {rolling_days}-day pooled")
        changed = part["champion_version"].ne(part["champion_version"].shift())
        for d, v in zip(days[changed], part["champion_version"][changed], strict=True):
            ax.axvline(d, color="grey", linewidth=0.8)
            ax.text(d, 1.0, f" {str(v).rsplit(':', 1)[-1]}", fontsize=7, va="top", color="grey")
        alert = part["alert"].fillna("").astype(str)
        bad = alert.str.len() > 0
        ax.scatter(days[bad], part.loc[bad, hit], color="red", zorder=3, s=18, label="alert")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{lst} list: realised hit rate@{k} (grey lines: champion version)")
        ax.legend(fontsize=7, loc="lower left", ncol=3)
    return png(fig)


def drift_plot(table: pd.DataFrame) -> bytes:
    """Each drift measure over its threshold per day (above 1 alerts), one line per signal and feature."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax = fig.subplots()
    for (signal, feature, metric), part in table.groupby(["signal", "feature", "metric"]):
        part = part.sort_values("day")
        ratio = part["value"] / part["threshold"].where(part["threshold"] > 0)
        style = {"feature": "-", "context": ":", "prediction": "--"}.get(signal, "-")
        ax.plot(pd.to_datetime(part["day"]), ratio, style, linewidth=1.2, label=f"{feature} ({metric})")
    alerts = table[table["alert"].astype(bool)]
    if len(alerts):
        ax.scatter(
            pd.to_datetime(alerts["day"]), alerts["value"] / alerts["threshold"], color="red", s=14, zorder=3
        )
    ax.axhline(1.0, color="red", linewidth=0.8)
    ax.set_title("drift / threshold per day (solid: features, dotted: weather, dashed: served lists)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    return png(fig)

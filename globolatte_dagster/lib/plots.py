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


def segments_plot(scaled: np.ndarray, segments: np.ndarray, profiles: pd.DataFrame, seed: int = 0) -> bytes:
    """Customers on the first two principal components, coloured by segment; serving mix per segment."""
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    if len(scaled) >= 2 and scaled.shape[1] >= 2:
        xy = PCA(n_components=2, random_state=seed).fit_transform(scaled)
        for s in np.unique(segments):
            m = segments == s
            ax1.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.5, label=f"segment {s}")
        ax1.legend(markerscale=3, fontsize=8, loc="best")
    ax1.set_title("customers (first two principal components)")
    ax1.set_xlabel("PC 1")
    ax1.set_ylabel("PC 2")
    seg = profiles["segment"].astype(str)
    bottom = np.zeros(len(profiles))
    for col, label in (("hot_share", "hot"), ("iced_share", "iced"), ("food_share", "food / none")):
        ax2.bar(seg, profiles[col], bottom=bottom, label=label)
        bottom += profiles[col].to_numpy()
    ax2.set_title("what each segment buys (share of items)")
    ax2.set_xlabel("segment")
    ax2.legend(fontsize=8)
    return png(fig)


def model_plot(evaluation: dict[str, Any], k: int = 3) -> bytes:
    """Hit rate@k of the model and both baselines: overall, per hold-out day and per segment."""
    from matplotlib.figure import Figure

    names = ("model", "repeat", "popularity")
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    overall = [evaluation[f"hit_rate_at_{k}_{n}"] for n in names]
    axes[0].bar(names, overall, color=["C0", "C1", "C2"])
    for i, v in enumerate(overall):
        axes[0].text(i, v, f"{v:.3f}", ha="center", va="bottom")
    axes[0].set_ylim(0, 1)
    axes[0].set_title(f"hit rate@{k} on the hold-out")
    per_day = pd.DataFrame(evaluation["per_day"])
    for n in names:
        axes[1].plot(pd.to_datetime(per_day["day"]), per_day[n], marker="o", label=n)
    axes[1].set_title("per hold-out day")
    axes[1].tick_params(axis="x", rotation=45)
    axes[1].legend(fontsize=8)
    per_seg = pd.DataFrame(evaluation["per_segment"])
    if len(per_seg):
        width = 0.27
        pos = np.arange(len(per_seg))
        for i, n in enumerate(names):
            axes[2].bar(pos + (i - 1) * width, per_seg[n], width, label=n)
        axes[2].set_xticks(pos, [str(s) for s in per_seg["segment"]])
    axes[2].set_title("per segment")
    axes[2].set_xlabel("segment")
    return png(fig)

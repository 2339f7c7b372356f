"""The report's charts: matplotlib figures rendered as inline SVG (text kept as text).

- :func:`trend_svg`: one small panel per indicator, its ratio month by month over the
  period against its target (a dashed line);
- :func:`distribution_svg`: one small panel per indicator, how many units fall in each
  10-point band of the ratio, bars coloured by whether the band meets the target, the
  target as a dashed line.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)

from pipeline.core.indicators import INDICATORS, NAMES_VI  # noqa: E402

__all__ = ["trend_svg", "distribution_svg"]

_COLS = 3
_OK, _BAD, _LINE, _TARGET = "#2e7d32", "#c62828", "#1565c0", "#555555"
matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: small files, the page's font
        "svg.hashsalt": "tthc-report",  # deterministic ids
        "font.family": "DejaVu Sans",
        "font.size": 8,
        "axes.titlesize": 8,
    }
)


def _short(name: str, width: int = 34) -> str:
    """At most two lines of ``width`` characters (a longer name is cut with …)."""
    lines = textwrap.wrap(name, width)
    if len(lines) > 2:
        lines = [lines[0], lines[1][: width - 1] + "…"]
    return "\n".join(lines)


def _pct_axis(ax) -> None:
    ax.set_ylim(0, 105)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:.0f}%"))
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    start = text.find("<svg")  # drop the XML prolog and DOCTYPE: the SVG goes inline into HTML
    return text[start:]


def _grid(n: int) -> tuple[Figure, list]:
    rows = math.ceil(n / _COLS)
    fig = Figure(figsize=(7.2, 1.9 * rows))
    axes = fig.subplots(rows, _COLS, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.subplots_adjust(hspace=1.0, wspace=0.35)
    return fig, axes[:n]


def trend_svg(labels: Sequence[str], series: dict[str, list[float | None]], targets: dict[str, float]) -> str:
    """``labels``: the months (``06/2025``); ``series[indicator]``: ratio per month (None: no outcome)."""
    indicators = [i for i in INDICATORS if i in series]
    fig, axes = _grid(len(indicators))
    xs = list(range(len(labels)))
    for ax, ind in zip(axes, indicators):
        values = [None if v is None else v * 100 for v in series[ind]]
        target = targets[ind] * 100
        ax.axhline(target, color=_TARGET, linestyle="--", linewidth=0.8)
        points = [(x, v) for x, v in zip(xs, values) if v is not None]
        if points:
            px, pv = zip(*points)
            ax.plot(px, pv, color=_LINE, linewidth=1.2, marker="o", markersize=2.5)
        ax.set_title(_short(NAMES_VI[ind]), loc="left")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=6.5)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        _pct_axis(ax)
    svg = _svg(fig)
    return svg


def distribution_svg(
    ratios: dict[str, list[float]], targets: dict[str, float], meets: dict[str, list[bool | None]]
) -> str:
    """``ratios[indicator]``: one ratio per unit; ``meets``: whether each unit meets the target."""
    indicators = [i for i in INDICATORS if i in ratios]
    fig, axes = _grid(len(indicators))
    bands = list(range(0, 100, 10))
    for ax, ind in zip(axes, indicators):
        ok = [0] * len(bands)
        bad = [0] * len(bands)
        for r, m in zip(ratios[ind], meets[ind]):
            k = min(int(r * 10), 9)
            (ok if m else bad)[k] += 1
        centers = [b + 5 for b in bands]
        ax.bar(centers, bad, width=9, color=_BAD, label="Chưa đạt")
        ax.bar(centers, ok, width=9, bottom=bad, color=_OK, label="Đạt")
        ax.axvline(targets[ind] * 100, color=_TARGET, linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:.0f}%"))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=4))
        ax.set_title(_short(NAMES_VI[ind]), loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if axes:
        axes[0].legend(fontsize=6.5, frameon=False, loc="upper left")
    return _svg(fig)

"""The toolkit's figures, used by the report and usable on their own in scripts and notebooks.

Every ``plot_*`` function takes keyword arguments only, draws on a new `matplotlib.figure.Figure`
(never the pyplot state machine, never ``plt.show()``) or, with ``ax=``, into the caller's axes (one Axes, or
an array with one per panel, as ArviZ's plots take them), and returns ``(fig, axes)``; ``axes`` is one
`Axes` or a 2-D array of them. Save with ``fig.savefig(...)`` or embed with `to_data_uri`.

    fig, axes = plot_data(data=fit.data)                       # raw data by organ and time
    fig, axes = plot_ppc(data=rows, predictive=draws)          # posterior predictive vs data
    fig, ax = plot_loo_pit(pit=values)                         # calibration of the predictive
    fig, axes = plot_prior_posterior(prior=..., posterior=...) # what the data taught
    fig, axes = plot_comparison(table=comparison.table)        # elpd and stacking weights
    fig, ax = plot_pathways(contributions=treg.pathway_contributions(fit))

`figure_problems(fig)` lists what a reader could not read in a figure (a data axis without a label, tick labels
that overlap, a title cut off at the figure's edge); the report records it with every figure it embeds.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullLocator

from .constants import INTERVAL_PROB

__all__ = [
    "DPI",
    "to_png",
    "to_data_uri",
    "figure_problems",
    "scale_label",
    "plot_data",
    "plot_ppc",
    "plot_loo_pit",
    "plot_prior_posterior",
    "plot_comparison",
    "plot_pathways",
]

#: Resolution of report figures (dots per inch).
DPI: int = 100

_PALETTE = ("#1b6ca8", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#5c6f7b", "#8ab17d", "#b56576")
_MARKERS = ("o", "s", "D", "^", "P", "X", "*", "h")
_PRIOR_COLOUR = "#9e9e9e"
_WARN_COLOUR = "#e9a03b"
_POST_COLOUR = "#1b6ca8"
_CONTINUOUS = ("fraction_of_dose", "cells")
_MEASURE_LABEL = {"fraction_of_dose": "fraction of dose", "cells": "cells"}


# --------------------------------------------------------------------------- helpers


def to_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no timestamp metadata, so the same figure gives the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def to_data_uri(fig: Figure, *, dpi: int = DPI) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(to_png(fig, dpi=dpi)).decode("ascii")


def _tick_texts(axis) -> list:
    """The visible, non-empty tick labels of an axis (after a draw)."""
    return [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text().strip()]


def _has_label(axis, sup) -> bool:
    return bool(axis.get_label_text().strip()) or (sup is not None and bool(sup.get_text().strip()))


def _overlaps(texts, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in texts]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def figure_problems(fig: Figure) -> list[str]:
    """What a reader could not read in `fig` (empty: none found). For every visible axes with data: an x or y axis
    that shows values (tick labels) without an axis label (a figure-wide ``supxlabel``/``supylabel`` counts),
    tick labels of one axis that overlap each other, and a panel title or suptitle cut off at the figure's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    original = fig.canvas
    canvas = original if hasattr(original, "get_renderer") else FigureCanvasAgg(fig)
    try:
        renderer = canvas.get_renderer()
        fig.draw(renderer)
        return _problems(fig, renderer)
    finally:
        if canvas is not original:
            fig.set_canvas(original)


def _problems(fig: Figure, renderer) -> list[str]:
    frame = fig.bbox
    sup_x, sup_y = getattr(fig, "_supxlabel", None), getattr(fig, "_supylabel", None)
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.has_data():
            continue
        name = ax.get_title() or f"axes {i + 1}"
        for which, axis, sup in (("x", ax.xaxis, sup_x), ("y", ax.yaxis, sup_y)):
            ticks = _tick_texts(axis)
            if ticks and not _has_label(axis, sup):
                out.append(f"{name}: {which} axis shows values but has no label")
            if _overlaps(ticks, renderer):
                out.append(f"{name}: {which} tick labels overlap")
        title = ax.title
        if title.get_text().strip():
            box = title.get_window_extent(renderer)
            if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1:
                out.append(f"{name}: title cut off at the figure's edge")
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text().strip():
        box = sup.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1:
            out.append("figure title cut off at the figure's edge")
    labels = [t for t in (sup, sup_x, sup_y) if t is not None and t.get_text().strip()]
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        if any(box.overlaps(t.get_window_extent(renderer)) for t in labels):
            out.append("the legend covers a figure label")
    return out


def _figure(nrows: int, ncols: int, *, width: float, height: float, sharex=False, sharey=False, ax=None):
    """A new figure with an (nrows, ncols) grid of axes, or the caller's axes (`ax`: one Axes, or an array of
    nrows × ncols of them, as ArviZ's plots take them)."""
    if ax is not None:
        axes = np.asarray(ax, dtype=object).reshape(-1)
        if axes.size != nrows * ncols:
            raise ValueError(f"this plot draws {nrows} × {ncols} panels; ax has {axes.size}")
        return axes[0].figure, axes.reshape(nrows, ncols)
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def _tail(prob: float) -> tuple[float, float]:
    return (1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0


def _time_axis(ax, times: np.ndarray) -> None:
    times = np.asarray(times, dtype=float)
    if times.size and np.all(times > 0):
        ax.set_xscale("log")
        _plain_ticks(ax.xaxis)
    else:
        ax.set_xscale("symlog", linthresh=0.1)


#: The x-axis label of every time-course figure.
TIME_LABEL = "time after infusion (h)"


def _annotate(data: pd.DataFrame) -> pd.DataFrame:
    """Add the plotting columns ``arm`` (prefixed by study when several) and ``censored_flag``."""
    need = {"time_h", "organ", "assay", "value"}
    missing = need - set(data.columns)
    if missing:
        raise ValueError(f"data needs the fate-table columns {sorted(need)}; missing {sorted(missing)}")
    d = data.copy()
    if "arm" not in d:
        d["arm"] = ""
    d["arm"] = d["arm"].astype(object).where(d["arm"].notna(), "").astype(str)
    if "study" in d and d["study"].astype(str).nunique() > 1:
        d["arm"] = d["study"].astype(str) + ": " + d["arm"]
    d["censored_flag"] = (d["censored"].astype(str) == "below_limit") if "censored" in d else False
    return d.reset_index(drop=True)


def _fate_rows(data: pd.DataFrame) -> pd.DataFrame:
    """Individual continuous measurements only (no summary rows, no detected/not-detected rows)."""
    d = data
    if "row_kind" in d:
        d = d[d["row_kind"].astype(str) == "individual"]
    if "measure" in d:
        d = d[d["measure"].astype(str).isin(_CONTINUOUS)]
    return _annotate(d)


def _grid(d: pd.DataFrame):
    organs = list(dict.fromkeys(d["organ"].astype(str)))
    assays = list(dict.fromkeys(d["assay"].astype(str)))
    arms = list(dict.fromkeys(d["arm"].astype(str)))
    return organs, assays, arms


def _ylabel(d: pd.DataFrame) -> str:
    if "measure" not in d:
        return "value"
    measures = sorted(set(d["measure"].astype(str)))
    return " / ".join(_MEASURE_LABEL.get(m, m) for m in measures) + " (log scale)"


def _jitter(n: int, arm_index: int, n_arms: int) -> np.ndarray:
    """Small multiplicative offsets so arms and animals at one time do not hide each other."""
    base = 1.0 + 0.06 * (arm_index - (n_arms - 1) / 2)
    spread = np.linspace(-0.02, 0.02, n) if n > 1 else np.zeros(1)
    return base * (1.0 + spread)


def _legend(fig: Figure, arms: Sequence[str], *, censored: bool, extra: Sequence[Line2D] = ()) -> None:
    handles = [Line2D([], [], color=_PALETTE[i % len(_PALETTE)], marker=_MARKERS[i % len(_MARKERS)],
                      linestyle="", label=arm or "data") for i, arm in enumerate(arms)]
    if censored:
        handles.append(Line2D([], [], color="black", marker="v", markerfacecolor="none", linestyle="",
                              label="below detection limit (plotted at the limit)"))
    handles.extend(extra)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), frameon=False,
               fontsize=9)


def _scatter_observed(ax, rows: pd.DataFrame, arm_index: int, n_arms: int) -> None:
    colour = _PALETTE[arm_index % len(_PALETTE)]
    marker = _MARKERS[arm_index % len(_MARKERS)]
    for t, at_t in rows.groupby("time_h", sort=True):
        x = float(t) * _jitter(len(at_t), arm_index, n_arms) if float(t) > 0 else np.full(len(at_t), float(t))
        values = at_t["value"].to_numpy(dtype=float)
        cens = at_t["censored_flag"].to_numpy(dtype=bool)
        if (~cens).any():
            ax.scatter(x[~cens], values[~cens], color=colour, marker=marker, s=22, zorder=3,
                       edgecolors="white", linewidths=0.4)
        if cens.any():
            ax.scatter(x[cens], values[cens], facecolors="none", edgecolors=colour, marker="v", s=30,
                       zorder=3, linewidths=1.1)


def _style_panel(ax, d, values, title: str, *, last_row: bool) -> None:
    """Shared look of a biodistribution panel: log y with limits from `values`, time axis (labelled under the
    bottom row; the panels share it), title."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())
    _positive_ylim(ax, values)
    _time_axis(ax, d["time_h"].to_numpy(dtype=float))
    ax.set_xlabel(TIME_LABEL if last_row else "", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def _grid_labels(fig: Figure, d: pd.DataFrame) -> None:
    """One y label (measure and unit) for a whole grid of panels, on its left."""
    fig.supylabel(_ylabel(d), fontsize=9)


def _positive_ylim(ax, values: np.ndarray) -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        ax.set_ylim(lo / 3.0, hi * 3.0)


# --------------------------------------------------------------------------- data and PPC


def plot_data(*, data: pd.DataFrame, title: str | None = None, width: float = 10.0,
              panel_height: float = 2.6, ax=None):
    """Raw measurements of a fate table by organ (columns) and assay (rows) against time.

    Log scales on both axes; colours are arms (prefixed by study when several studies are
    present); values below the detection limit are open down-triangles at the limit. Summary rows
    and detected/not-detected rows are left out (they are listed in the report's data section).
    Returns ``(fig, axes)`` with ``axes`` a 2-D array (assays × organs).
    """
    d = _fate_rows(data)
    if d.empty:
        raise ValueError("no individual continuous measurements (fraction_of_dose or cells) to plot")
    organs, assays, arms = _grid(d)
    fig, axes = _figure(len(assays), len(organs), width=width, height=0.6 + panel_height * len(assays),
                        sharex=True, ax=ax)
    for i, assay in enumerate(assays):
        for j, organ in enumerate(organs):
            ax = axes[i, j]
            cell = d[(d["assay"].astype(str) == assay) & (d["organ"].astype(str) == organ)]
            for k, arm in enumerate(arms):
                rows = cell[cell["arm"] == arm]
                if len(rows):
                    _scatter_observed(ax, rows, k, len(arms))
            _style_panel(ax, d, cell["value"].to_numpy(dtype=float), f"{organ} · {assay}",
                         last_row=i == len(assays) - 1)
            if cell.empty:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    if title:
        fig.suptitle(title, fontsize=11)
    _grid_labels(fig, d)
    _legend(fig, arms, censored=bool(d["censored_flag"].any()))
    return fig, axes


def plot_ppc(*, data: pd.DataFrame, predictive: np.ndarray, prob: float = INTERVAL_PROB,
             title: str | None = None, width: float = 10.0, panel_height: float = 2.6, ax=None):
    """Posterior predictive check of a fate table: the data over the predictive distribution.

    ``data``: the fate rows that were modelled as continuous measurements, one per column of
    ``predictive`` (shape draws × rows: posterior predictive draws of each row, on the scale of
    ``value``). For each organ (columns), assay (rows), arm and time, the band is the central
    ``prob`` interval and the line the median of the predictive draws of that time's animals.
    Returns ``(fig, axes)`` (assays × organs).
    """
    d = _annotate(data)
    pred = np.asarray(predictive, dtype=float)
    if pred.ndim != 2 or pred.shape[1] != len(d):
        raise ValueError(f"predictive must have shape (draws, {len(d)}) to match the data rows, got {pred.shape}")
    organs, assays, arms = _grid(d)
    lo_q, hi_q = _tail(prob)
    fig, axes = _figure(len(assays), len(organs), width=width, height=0.6 + panel_height * len(assays),
                        sharex=True, ax=ax)
    for i, assay in enumerate(assays):
        for j, organ in enumerate(organs):
            ax = axes[i, j]
            mask = (d["assay"].astype(str) == assay) & (d["organ"].astype(str) == organ)
            cell = d[mask]
            shown = [cell["value"].to_numpy(dtype=float)]
            for k, arm in enumerate(arms):
                rows = cell[cell["arm"] == arm]
                if rows.empty:
                    continue
                colour = _PALETTE[k % len(_PALETTE)]
                times, lows, meds, highs = [], [], [], []
                for t, at_t in rows.groupby("time_h", sort=True):
                    draws = pred[:, at_t.index.to_numpy()].reshape(-1)
                    draws = draws[np.isfinite(draws)]
                    if draws.size == 0:
                        continue
                    times.append(float(t))
                    lows.append(np.quantile(draws, lo_q))
                    meds.append(np.quantile(draws, 0.5))
                    highs.append(np.quantile(draws, hi_q))
                if times:
                    ax.fill_between(times, lows, highs, color=colour, alpha=0.18, linewidth=0)
                    ax.plot(times, meds, color=colour, linewidth=1.2, alpha=0.9)
                    shown += [np.asarray(lows), np.asarray(highs)]
                _scatter_observed(ax, rows, k, len(arms))
            _style_panel(ax, d, np.concatenate(shown) if shown else np.array([]), f"{organ} · {assay}",
                         last_row=i == len(assays) - 1)
    if title:
        fig.suptitle(title, fontsize=11)
    _grid_labels(fig, d)
    band = Line2D([], [], color="grey", linewidth=6, alpha=0.3, label=f"{prob:.0%} predictive interval")
    med = Line2D([], [], color="grey", linewidth=1.2, label="predictive median")
    _legend(fig, arms, censored=bool(d["censored_flag"].any()), extra=(band, med))
    return fig, axes


def plot_loo_pit(*, pit: np.ndarray, unreliable: np.ndarray | None = None, prob: float = INTERVAL_PROB,
                 title: str | None = None, width: float = 8.0, height: float = 3.0, ax=None):
    """LOO-PIT calibration: histogram of the leave-one-out probability integral transform values
    (left) and their empirical CDF against the uniform (right), with a pointwise ``prob`` band for
    a uniform sample of the same size. A well-calibrated predictive gives a flat histogram and an
    ECDF inside the band; a U shape means the predictive is too narrow, a hump too wide.

    ``unreliable``: a boolean mask, one per value, of the observations whose Pareto k is above the
    PSIS threshold (their LOO-PIT is not a reliable leave-one-out value): they are stacked in orange on
    the histogram and left out of the ECDF. Returns ``(fig, axes)`` with ``axes`` a 1 × 2 array.
    """
    from scipy import stats

    u_all = np.asarray(pit, dtype=float).reshape(-1)
    bad = np.zeros(u_all.shape, bool) if unreliable is None else np.asarray(unreliable, bool).reshape(-1)
    if bad.shape != u_all.shape:
        raise ValueError(f"unreliable must have one flag per LOO-PIT value ({u_all.size}), got {bad.size}")
    keep = np.isfinite(u_all)
    u, bad = u_all[keep], bad[keep]
    if u.size == 0:
        raise ValueError("no finite LOO-PIT values to plot")
    n = u.size
    fig, axes = _figure(1, 2, width=width, height=height, ax=ax)
    ax_h, ax_e = axes[0, 0], axes[0, 1]
    bins = int(min(20, max(5, round(math.sqrt(n)))))
    ax_h.hist([u[~bad], u[bad]], bins=bins, range=(0, 1), color=[_POST_COLOUR, _WARN_COLOUR], alpha=0.8,
              edgecolor="white", zorder=2, stacked=True,
              label=["Pareto k ≤ threshold", "Pareto k above threshold (unreliable)"] if bad.any() else None)
    lo_q, hi_q = _tail(prob)
    lo_c, hi_c = stats.binom.ppf([lo_q, hi_q], n, 1.0 / bins)
    ax_h.axhspan(lo_c, hi_c, color=_PRIOR_COLOUR, alpha=0.25, label=f"{prob:.0%} range if uniform", zorder=0)
    ax_h.axhline(n / bins, color="black", linewidth=0.8, zorder=3)
    ax_h.set_xlim(0, 1)
    ax_h.set_xlabel("LOO-PIT value (0–1)")
    ax_h.set_ylabel("observations")
    ax_h.set_ylim(0, max(hi_c, np.histogram(u, bins=bins, range=(0, 1))[0].max()) * 1.25)
    ax_h.legend(fontsize=8, frameon=False, loc="upper right")
    grid = np.linspace(0, 1, 201)
    reliable = u[~bad]
    if reliable.size:
        n = reliable.size
        ecdf = np.searchsorted(np.sort(reliable), grid, side="right") / n
    else:  # every value is unreliable: show them all rather than an empty panel
        ecdf = np.searchsorted(np.sort(u), grid, side="right") / n
    band_lo = stats.binom.ppf(lo_q, n, grid) / n
    band_hi = stats.binom.ppf(hi_q, n, grid) / n
    ax_e.fill_between(grid, band_lo - grid, band_hi - grid, color=_PRIOR_COLOUR, alpha=0.3,
                      label=f"{prob:.0%} pointwise band")
    ax_e.plot(grid, ecdf - grid, color=_POST_COLOUR, linewidth=1.5,
              label="LOO-PIT ECDF" + (f" (the {n} with Pareto k ≤ threshold)" if bad.any() and reliable.size else ""))
    ax_e.axhline(0, color="black", linewidth=0.8)
    ax_e.set_xlim(0, 1)
    ax_e.set_xlabel("LOO-PIT value (0–1)")
    ax_e.set_ylabel("ECDF − uniform CDF")
    ax_e.legend(fontsize=8, frameon=False, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, axes


# --------------------------------------------------------------------------- prior vs posterior


_FORWARD = {
    "log": lambda x: np.log(x),
    "logit": lambda x: np.log(x) - np.log1p(-x),
    "linear": lambda x: x,
}
_INVERSE = {
    "log": np.exp,
    "logit": lambda y: 1.0 / (1.0 + np.exp(-y)),
    "linear": lambda y: y,
}


def _finite_on(values: np.ndarray, scale: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    if scale == "log":
        v = v[v > 0]
    elif scale == "logit":
        v = v[(v > 0) & (v < 1)]
    return v


#: How a panel's axis scale is named in its x-label.
_SCALE_WORDS = {"log": "log scale", "logit": "logit scale", "linear": ""}
#: Central share of the prior and of the posterior draws a prior-vs-posterior panel spans.
PANEL_RANGE_PROB: float = 0.99
#: Character width of a panel title per inch of panel width (at the titles' 9 pt font).
_TITLE_CHARS_PER_INCH: float = 13.0


def scale_label(unit: str = "", scale: str = "linear") -> str:
    """The x-label of a prior-vs-posterior panel: the unit and the axis scale ('1/h, log scale')."""
    words = _SCALE_WORDS.get(scale, scale)
    return ", ".join(p for p in (unit.strip(), words) if p) or "value"


def _panel_range(post_t: np.ndarray, prior_t: np.ndarray, prob: float) -> tuple[float, float]:
    """The union of the central `prob` intervals of the posterior and the prior (transformed scale)."""
    lo_q, hi_q = _tail(prob)
    lo, hi = np.quantile(post_t, [lo_q, hi_q])
    if prior_t.size:
        plo, phi = np.quantile(prior_t, [lo_q, hi_q])
        lo, hi = min(lo, plo), max(hi, phi)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def plot_prior_posterior(*, posterior: Mapping[str, np.ndarray], prior: Mapping[str, np.ndarray] | None = None,
                         scales: Mapping[str, str] | None = None, truth: Mapping[str, float] | None = None,
                         labels: Mapping[str, str] | None = None, xlabels: Mapping[str, str] | None = None,
                         ncols: int = 4, prob: float = INTERVAL_PROB, title: str | None = None,
                         width: float = 10.0, panel_height: float = 1.9, ax=None):
    """Prior (grey) against posterior (blue) draws, one small panel per quantity, in natural units.

    ``posterior`` and ``prior``: ``{name: 1-D draws}``; ``scales``: ``{name: "log" | "logit" |
    "linear"}``, the axis scale of each panel (rates on a log axis, fractions on a logit axis;
    default linear); ``truth``: values to mark (e.g. the parameters a virtual experiment was
    simulated from); ``labels``: panel titles (wrapped to the panel's width); ``xlabels``: each panel's
    x-label, its unit and scale (default: the scale, `scale_label`). The posterior's central ``prob``
    interval is the black bar under each panel. A panel spans the central `PANEL_RANGE_PROB` of the
    prior and of the posterior; draws outside are left out of the histograms (the densities keep
    their total, so a wide prior shows as a low, flat band). Returns ``(fig, axes)`` (rows × ``ncols``).
    """
    names = list(posterior)
    if not names:
        raise ValueError("nothing to plot: posterior is empty")
    prior = prior or {}
    scales = scales or {}
    truth = truth or {}
    labels = labels or {}
    xlabels = xlabels or {}
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    chars = max(12, int(width / ncols * _TITLE_CHARS_PER_INCH))
    titles = {n: textwrap.fill(str(labels.get(n, n)), chars) for n in names}
    title_lines = max(t.count("\n") + 1 for t in titles.values())
    fig, axes = _figure(nrows, ncols, width=width,
                        height=0.5 + (panel_height + 0.16 * (title_lines - 1)) * nrows, ax=ax)
    lo_q, hi_q = _tail(prob)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        name = names[k]
        scale = scales.get(name, "linear")
        if scale not in _FORWARD:
            raise ValueError(f"scale of {name!r} must be log, logit or linear, got {scale!r}")
        post = _finite_on(posterior[name], scale)
        pri = _finite_on(prior.get(name, []), scale)
        ax.set_title(titles[name], fontsize=9)
        if post.size == 0:
            ax.text(0.5, 0.5, "no draws", transform=ax.transAxes, ha="center")
            continue
        fwd, inv = _FORWARD[scale], _INVERSE[scale]
        with np.errstate(divide="ignore", invalid="ignore"):
            tp, tr = fwd(post), fwd(pri)
        lo, hi = _panel_range(tp, tr, PANEL_RANGE_PROB)
        edges_t = np.linspace(lo, hi, int(np.clip(np.sqrt(post.size) * 1.5, 15, 40)) + 1)
        width_t = edges_t[1] - edges_t[0]
        edges = inv(edges_t)
        for draws, colour, alpha in ((tr, _PRIOR_COLOUR, 0.55), (tp, _POST_COLOUR, 0.7)):
            if draws.size == 0:
                continue
            counts, _ = np.histogram(draws, bins=edges_t)   # draws outside the range are dropped, not piled
            ax.stairs(counts / (draws.size * width_t), edges, fill=True, color=colour, alpha=alpha)
        q_lo, q_hi = np.quantile(post, [lo_q, hi_q])
        ax.plot([q_lo, q_hi], [0, 0], color="black", linewidth=3, solid_capstyle="butt", clip_on=False)
        tv = truth.get(name)
        if tv is not None and np.isfinite(tv) and _finite_on(np.array([tv]), scale).size:
            ax.axvline(float(tv), color="#d1495b", linewidth=1.3, linestyle="--")
        if scale != "linear":
            ax.set_xscale(scale)
            _plain_ticks(ax.xaxis)
        ax.xaxis.set_major_locator(_few_ticks(ax.xaxis, float(edges[0]), float(edges[-1])))
        ax.set_xlim(edges[0], edges[-1])
        ax.set_yticks([])
        ax.set_xlabel(xlabels.get(name) or scale_label("", scale), fontsize=8)
        ax.tick_params(labelsize=8)
    handles = [Line2D([], [], color=_PRIOR_COLOUR, linewidth=6, alpha=0.6, label="prior"),
               Line2D([], [], color=_POST_COLOUR, linewidth=6, alpha=0.7, label="posterior"),
               Line2D([], [], color="black", linewidth=3, label=f"{prob:.0%} posterior interval")]
    if any(v is not None for v in truth.values()):
        handles.append(Line2D([], [], color="#d1495b", linestyle="--", label="simulated truth"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, axes


def _few_ticks(axis, lo: float, hi: float):
    """About four major ticks between `lo` and `hi`, so the labels of a narrow panel do not run into each other."""
    from matplotlib.ticker import LogLocator

    if axis.get_scale() == "log":
        decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
        subs = (1.0, 2.0, 5.0) if decades < 1.5 else (1.0,)
        return LogLocator(base=10, subs=subs, numticks=5 if decades < 8 else 4)
    if axis.get_scale() == "logit":
        return axis.get_major_locator()
    return MaxNLocator(nbins=4)


def _plain_ticks(axis) -> None:
    """Tick labels as plain numbers (0.01, 0.99, 20) rather than powers of ten or 1 − 10⁻²."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    plain = FuncFormatter(lambda v, _: f"{v:.6g}")
    if axis.get_scale() == "log":
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    if axis.get_scale() in ("log", "logit"):
        axis.set_major_formatter(plain)
        axis.set_minor_locator(NullLocator())


# --------------------------------------------------------------------------- comparison and Treg


def plot_comparison(*, table: pd.DataFrame, title: str | None = None, width: float = 9.0,
                    height: float | None = None, ax=None):
    """Model comparison: expected log predictive density (elpd, with its standard error) and the
    stacking weight of each model. ``table`` is ``Comparison.table`` (``az.compare`` columns
    ``elpd_loo``, ``se``, ``weight``; index = model). Returns ``(fig, axes)`` (1 × 2)."""
    for col in ("elpd_loo", "weight"):
        if col not in table.columns:
            raise ValueError(f"comparison table needs a {col!r} column")
    t = table.iloc[::-1]
    models = [str(m) for m in t.index]
    y = np.arange(len(models))
    height = height or 0.9 + 0.45 * len(models)
    fig, axes = _figure(1, 2, width=width, height=height, ax=ax)
    ax_e, ax_w = axes[0, 0], axes[0, 1]
    se = t["se"].to_numpy(dtype=float) if "se" in t else np.zeros(len(models))
    ax_e.errorbar(t["elpd_loo"].to_numpy(dtype=float), y, xerr=se, fmt="o", color=_POST_COLOUR, capsize=3)
    ax_e.set_yticks(y, models)
    ax_e.set_ylabel("model")
    ax_e.set_xlabel("elpd (LOO, log density units), higher is better")
    ax_e.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax_e.grid(True, axis="x", alpha=0.3)
    ax_w.barh(y, t["weight"].to_numpy(dtype=float), color=_POST_COLOUR, alpha=0.8)
    for yi, w in zip(y, t["weight"].to_numpy(dtype=float)):
        ax_w.text(min(w + 0.02, 0.92), yi, f"{w:.2f}", va="center", fontsize=9)
    ax_w.set_xlim(0, 1)
    ax_w.set_ylim(ax_e.get_ylim())
    ax_w.set_yticks(y, [""] * len(models))   # the same rows as the left panel, named there
    ax_w.set_xlabel("stacking weight (0–1)")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, axes


def plot_pathways(*, contributions: pd.DataFrame, title: str | None = None, width: float = 7.0,
                  height: float | None = None, ax=None):
    """Treg pathway attribution: for each pathway, the posterior mean and interval of the fraction
    of induction lost when it is removed (``treg.pathway_contributions`` or ``blocker_effects``;
    columns ``mean``, ``hdi_low``, ``hdi_high``; index = pathway). Returns ``(fig, ax)``."""
    for col in ("mean", "hdi_low", "hdi_high"):
        if col not in contributions.columns:
            raise ValueError(f"contributions need a {col!r} column")
    t = contributions.iloc[::-1]
    names = [str(n) for n in t.index]
    y = np.arange(len(names))
    height = height or 0.9 + 0.38 * len(names)
    fig, axes = _figure(1, 1, width=width, height=height, ax=ax)
    ax = axes[0, 0]
    mean = t["mean"].to_numpy(dtype=float)
    lo = t["hdi_low"].to_numpy(dtype=float)
    hi = t["hdi_high"].to_numpy(dtype=float)
    ax.errorbar(mean, y, xerr=[np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)], fmt="o",
                color=_POST_COLOUR, capsize=3)
    ax.set_yticks(y, names)
    ax.set_ylabel("pathway")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("fraction of induction lost when removed (0–1)")
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, ax

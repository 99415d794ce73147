"""Figures of the workflow, written as PNG files (atomically) and returned as paths.

Figures are built on `matplotlib.figure.Figure` directly, not pyplot: no global state, no GUI backend, safe in
notebooks, scripts and parallel kernels alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wldetect.io import atomic_path, check_output_path


def save_figure(fig, path: str | Path, dpi: int = 130) -> Path:
    path = check_output_path(path, (".png", ".pdf", ".svg"), "figure")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------------- step 2: mask coverage

_MASKED_COLOR, _KEPT_COLOR, _LIMIT_COLOR = "#d62728", "#1f77b4", "#2ca02c"


def mask_coverage_figure(
    counts: np.ndarray,
    mask: np.ndarray,
    threshold: int | None = None,
    language_impact: pd.DataFrame | None = None,
    validation_limit_pct: float = 0.01,
    max_languages: int = 45,
):
    """The mask at a glance, returned as a Figure so a notebook shows it inline (`save_figure` writes the PNG).

    Top left: cumulative share of the vocabulary by token count, split into masked and kept tokens.
    Top right: share of training data the masked tokens carry at every threshold, against the seed's
    < 0.01% validation line. Bottom (with per-language counts): share of each language's tokens masked.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    vocab_size, total = counts.size, int(counts.sum())
    masked_share = 100.0 * counts[~mask].sum() / total if total else 0.0
    with_languages = language_impact is not None and len(language_impact) > 0
    fig = Figure(figsize=(13, 10.5 if with_languages else 5.6))
    grid = fig.add_gridspec(2 if with_languages else 1, 2, height_ratios=[1, 0.85] if with_languages else [1])
    left, right = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])

    # Cumulative share of vocabulary by count, the masked part stacked under the kept part.
    values = np.unique(counts)
    all_upto = 100.0 * np.searchsorted(np.sort(counts), values, side="right") / vocab_size
    masked_upto = 100.0 * np.searchsorted(np.sort(counts[~mask]), values, side="right") / vocab_size
    left.fill_between(values, 0, masked_upto, step="post", color=_MASKED_COLOR, alpha=0.35, linewidth=0)
    left.fill_between(values, masked_upto, all_upto, step="post", color=_KEPT_COLOR, alpha=0.35, linewidth=0)
    left.step(values, all_upto, where="post", color="black", linewidth=1.0)
    n_masked, n_unseen = int((~mask).sum()), int((counts == 0).sum())
    n_kept = vocab_size - n_masked
    handles = [
        Patch(color=_MASKED_COLOR, alpha=0.35, label=f"masked: {n_masked:,} tokens ({100 * n_masked / vocab_size:.1f}%)"),
        Patch(color=_KEPT_COLOR, alpha=0.35, label=f"kept: {n_kept:,} tokens ({100 * n_kept / vocab_size:.1f}%)"),
        Patch(color="none", label=f"never seen (count 0): {n_unseen:,} ({100 * n_unseen / vocab_size:.1f}%)"),
    ]
    if threshold is not None:
        line = left.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold = {threshold}")
        handles.append(line)
    left.set_xscale("symlog", linthresh=1, linscale=0.6)
    left.set_xlim(0, max(10, values.max() * 1.5))
    left.set_ylim(0, 101)
    left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}%"))
    left.set_xlabel("token count in training data (0, then log scale)")
    left.set_ylabel("share of vocabulary with count <= x")
    left.set_title(f"Cumulative distribution of the {vocab_size:,} tokens by count", fontsize=11)
    left.legend(handles=handles, fontsize=9, loc="lower right")
    left.grid(alpha=0.3)

    # Share of training data masked at every threshold (log-log), with the validation line.
    distinct, frequency = np.unique(counts, return_counts=True)
    cumulative = 100.0 * np.cumsum(distinct * frequency) / total if total else np.zeros(distinct.size)
    thresholds = distinct + 1  # threshold t masks every count < t
    positive = cumulative > 0
    if positive.any():
        right.step(thresholds[positive], cumulative[positive], where="post", color=_MASKED_COLOR, linewidth=1.6,
                   label="masked share of training data, by threshold")  # fmt: skip
    right.axhline(validation_limit_pct, color=_LIMIT_COLOR, linestyle="--", linewidth=1.4,
                  label=f"validation limit: masked < {validation_limit_pct:g}% of training data")  # fmt: skip
    passing = thresholds[cumulative < validation_limit_pct]
    if passing.size:
        right.plot([], [], " ", label=f"largest threshold within the limit: {int(passing.max())}")
    verdict = "passes" if masked_share < validation_limit_pct else "FAILS"
    if threshold is not None:
        right.axvline(threshold, color="black", linestyle="--", linewidth=1)
    if masked_share > 0:
        right.plot([threshold or int(counts[mask].min(initial=1))], [masked_share], "o", color="black", zorder=4,
                   markersize=7, label=f"this mask: {masked_share:.4f}% ({verdict})")  # fmt: skip
    else:
        right.plot([], [], " ", label=f"this mask: 0% of training data ({verdict})")
    right.set_xscale("log")
    right.set_yscale("log")
    floor = min(validation_limit_pct / 10, cumulative[positive].min() if positive.any() else validation_limit_pct)
    right.set_ylim(floor / 2, 300)
    right.set_xlim(1, max(thresholds.max(), 10) * 1.2)
    right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.10g}%"))
    right.set_xlabel("threshold (tokens with count < threshold are masked)")
    right.set_ylabel("share of training data in masked tokens")
    right.set_title("Training data carried by masked tokens", fontsize=11)
    right.legend(fontsize=9, loc="lower right")
    right.grid(alpha=0.3)

    if with_languages:
        bottom = fig.add_subplot(grid[1, :])
        rows = language_impact.sort_values("masked_occurrences_pct", ascending=False).head(max_languages)
        share = rows["masked_occurrences_pct"].to_numpy(dtype=float)
        colors = np.where(rows["flagged"].to_numpy(bool), _MASKED_COLOR, "#9a9a9a")
        x = np.arange(len(rows))
        bottom.bar(x, share, color=colors, width=0.75)
        bottom.set_xticks(x)
        bottom.set_xticklabels(rows["language"], rotation=90, fontsize=8)
        bottom.set_xlim(-0.6, len(rows) - 0.4)
        overall = float(language_impact.attrs.get("overall_masked_pct", 0.0))
        bottom.axhline(overall, color="black", linewidth=1, label=f"all languages: {overall:.4f}%")
        bottom.axhline(2 * overall, color=_MASKED_COLOR, linewidth=1, linestyle=":",
                       label="flag: > 2x the overall share (and > 0.01%)")  # fmt: skip
        bottom.axhline(validation_limit_pct, color=_LIMIT_COLOR, linestyle="--", linewidth=1.2,
                       label=f"{validation_limit_pct:g}%")  # fmt: skip
        handles, labels = bottom.get_legend_handles_labels()
        handles.append(Patch(color=_MASKED_COLOR, label="flagged language"))
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.4g}%"))
        flagged = int(language_impact["flagged"].sum())
        shown = "" if len(rows) == len(language_impact) else f" (the {len(rows)} most affected shown)"
        bottom.set_title(
            f"Share of each language's token occurrences masked: "
            f"{flagged} of {len(language_impact)} languages flagged{shown}",
            fontsize=11,
        )
        bottom.set_ylabel("share of the language's tokens masked")
        bottom.legend(handles=handles, fontsize=9, loc="upper right")
        bottom.grid(axis="y", alpha=0.3)

    title = f"Token mask coverage: {vocab_size:,} vocabulary tokens, {total:,} token occurrences in training data"
    if threshold is not None:
        title += f", threshold {threshold}"
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ step 4: evaluation


def confusion_heatmap(
    confusion: pd.DataFrame, accuracy: pd.Series | None, path: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (percent of each gold language's sentences) as a seaborn heatmap.

    Rows are gold languages (tick labels carry their accuracy), columns predicted labels; columns beyond
    the gold languages (model languages absent from the set, `<none>`) sit right of a separating line.
    The colour scale is a square root, so the 1-5 % confusions that matter stay visible next to a 95 %
    diagonal; every non-zero cell is annotated with its percentage while the matrix is small enough to read.
    """
    import seaborn as sns
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    counts = confusion.to_numpy(dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100 * counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n_rows, n_cols = percent.shape
    cell = 0.3 if n_rows <= 60 else 0.12
    fig = Figure(figsize=(max(7.0, cell * n_cols + 3.0), max(5.5, cell * n_rows + 2.2)))
    ax = fig.subplots()
    annotate = n_rows <= 60
    labels = np.where(percent == 0, "", np.where(percent < 1, "<1", np.char.mod("%.0f", percent)))
    row_labels = list(confusion.index)
    if accuracy is not None:
        row_labels = [f"{code}  {accuracy.get(code, np.nan):.0%}" for code in confusion.index]
    ax.set_facecolor("white")  # zero cells are masked: white, so the errors stand out
    sns.heatmap(
        percent,
        ax=ax,
        mask=percent == 0,
        cmap="rocket_r",
        norm=PowerNorm(gamma=0.5, vmin=0, vmax=100),
        annot=labels if annotate else False,
        fmt="",
        annot_kws={"fontsize": 6},
        linewidths=0.3 if annotate else 0,
        linecolor="#e4e4e4",
        xticklabels=False,  # set below: seaborn's overlap check renders the figure once per label (minutes at 200)
        yticklabels=False,
        cbar_kws={"label": "% of the gold language's sentences", "shrink": 0.6, "ticks": [0, 1, 5, 10, 25, 50, 100]},
        square=annotate,
    )
    if annotate:
        for i in range(n_rows + 1):
            ax.axhline(i, color="#ececec", linewidth=0.3, zorder=0)
        for j in range(n_cols + 1):
            ax.axvline(j, color="#ececec", linewidth=0.3, zorder=0)
    fontsize = 7 if n_rows <= 60 else 4
    ax.set_xticks(np.arange(n_cols) + 0.5, list(confusion.columns), rotation=90)
    ax.set_yticks(np.arange(n_rows) + 0.5, row_labels, rotation=0)
    ax.tick_params(axis="both", labelsize=fontsize, length=0)
    if n_cols > n_rows:
        ax.axvline(n_rows, color="#1f77b4", linewidth=1.2)
        ax.text(n_rows + 0.2, -0.25, "predicted, but not a language of this set →", color="#1f77b4", fontsize=7,
                ha="left", va="bottom")  # fmt: skip
    ax.set_xlabel("predicted language")
    ax.set_ylabel("gold language  (accuracy)")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------ step 5: comparison


def _run_axis(overall: pd.DataFrame) -> tuple[np.ndarray, list[str], bool]:
    """x positions of the runs: their thresholds (no mask = 0) when those tell the runs apart, else 0..n-1."""
    thresholds = pd.to_numeric(overall["threshold"], errors="coerce").fillna(0).to_numpy(dtype=float)
    if overall["threshold"].notna().any() and len(np.unique(thresholds)) == len(thresholds):
        labels = ["no mask" if t == 0 else f"{t:g}" for t in thresholds]
        return thresholds, labels, True
    return np.arange(len(overall), dtype=float), [str(i) for i in overall.index], False


def threshold_curves(overall: pd.DataFrame, path: str | Path, baseline: str, confidence: float = 0.95) -> Path:
    """Accuracy and macro F1 against the masking threshold, and the accuracy change with its bootstrap CI.

    Points are annotated with the share of the vocabulary masked, so the figure reads
    "threshold -> tokens masked -> accuracy". Runs without distinct thresholds are placed side by side.
    """
    from matplotlib.figure import Figure

    x, tick_labels, numeric = _run_axis(overall)
    order = np.argsort(x, kind="stable")
    x, tick_labels = x[order], [tick_labels[i] for i in order]
    rows = overall.iloc[order]
    fig = Figure(figsize=(12, 4.6))
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        if numeric:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("masking threshold (minimum token count)")
        else:
            ax.set_xlabel("run")
        ax.set_xticks(x)
        ax.set_xticklabels(tick_labels, rotation=0 if numeric else 20, ha="center" if numeric else "right", fontsize=8)
        ax.grid(alpha=0.3)
        ax.margins(x=0.12)

    accuracy = 100 * rows["accuracy"].to_numpy()
    f1 = 100 * rows["f1_macro"].to_numpy()
    left.plot(x, accuracy, "o-", color="#1f77b4", label="accuracy")
    left.plot(x, f1, "s--", color="#ff7f0e", label="macro F1 (x100)")
    occurrences = pd.to_numeric(rows["occurrences_masked_fraction"], errors="coerce").to_numpy(dtype=float)
    shares = pd.to_numeric(rows["vocab_masked_fraction"], errors="coerce").to_numpy(dtype=float)
    informative = len(np.unique(shares[np.isfinite(shares)])) > 1  # all equal (e.g. tables of one model): say nothing
    for xi, yi, share, occ in zip(x, accuracy, shares, occurrences):
        if informative and np.isfinite(share):
            text = f"{share:.1%} of vocab masked" + (f"\n{occ:.2%} of training tokens" if np.isfinite(occ) else "")
            left.annotate(text, (xi, yi), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=7,
                          color="#555555")  # fmt: skip
    low = min(accuracy.min(), f1.min())
    high = max(accuracy.max(), f1.max())
    pad = max(0.5, 0.15 * (high - low))
    left.set_ylim(low - pad, high + 3 * pad)
    left.set_ylabel("%")
    left.set_title("Accuracy and macro F1", fontsize=10)
    left.legend(fontsize=8, loc="best")

    delta = 100 * rows["accuracy_delta"].to_numpy()
    errors = np.vstack([delta - 100 * rows["ci_low"].to_numpy(), 100 * rows["ci_high"].to_numpy() - delta])
    is_baseline = (rows.index == baseline)
    significant = (rows["p_mcnemar"].to_numpy() < 0.05) & ~is_baseline
    plain = ~significant & ~is_baseline
    right.axhline(0, color="black", linewidth=0.8)
    right.axhline(-1, color="#d62728", linewidth=0.8, linestyle=":", label="-1 point")
    right.errorbar(x[~is_baseline], delta[~is_baseline], yerr=np.clip(errors[:, ~is_baseline], 0, None), fmt="none",
                   ecolor="#1f77b4", capsize=4)  # fmt: skip
    right.scatter(x[is_baseline], delta[is_baseline], marker="D", color="black", zorder=3, label=f"baseline ({baseline})")
    if plain.any():
        right.scatter(x[plain], delta[plain], facecolors="white", edgecolors="#1f77b4", zorder=3,
                      label="McNemar p >= 0.05")  # fmt: skip
    if significant.any():
        right.scatter(x[significant], delta[significant], color="#1f77b4", zorder=3, label="McNemar p < 0.05")
    right.set_ylabel(f"accuracy - {baseline} (points)")
    right.set_title(f"Accuracy change with {confidence:.0%} paired bootstrap interval", fontsize=10)
    right.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def language_delta_bars(per_language: pd.DataFrame, path: str | Path, drop_threshold: float = 0.01) -> Path:
    """Per-language accuracy change against the baseline, one panel per run, largest drop on top.

    Bars of languages that drop by more than `drop_threshold` are red; the dotted line marks that limit.
    """
    from matplotlib.figure import Figure

    runs = list(dict.fromkeys(per_language["run"]))
    first = per_language[per_language["run"] == runs[0]]
    order = list(first.sort_values(["accuracy_delta", "f1_delta", "language"])["language"])
    n = len(order)
    fig = Figure(figsize=(max(6.0, 4.2 * len(runs) + 1.5), max(4.0, 0.26 * n + 1.6)))
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True, squeeze=False)[0])
    y = np.arange(n)
    for ax, run in zip(axes, runs):
        rows = per_language[per_language["run"] == run].set_index("language").reindex(order)
        delta = 100 * rows["accuracy_delta"].to_numpy(dtype=float)
        colors = np.where(rows["flagged"].to_numpy(bool), "#d62728", np.where(delta > 0, "#2ca02c", "#9a9a9a"))
        ax.barh(y, delta, color=colors, height=0.75)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(-100 * drop_threshold, color="#d62728", linewidth=0.8, linestyle=":")
        span = min(max(np.abs(delta).max(initial=0.0), 100 * drop_threshold) * 1.35, 110.0)
        ax.set_xlim(-span, span)
        for yi, value in zip(y, delta):
            if value != 0:
                ax.text(value, yi, f" {value:+.1f} ", va="center", ha="left" if value > 0 else "right", fontsize=6)
        flagged = int(rows["flagged"].sum())
        ax.set_title(f"{run}\n{flagged} of {n} languages drop > {100 * drop_threshold:g} pt", fontsize=9)
        support = rows["support"].to_numpy(dtype=float)
        one = f"; one sentence = {100 / support.max():.2g}-{100 / support.min():.2g} pt" if support.size else ""
        if support.size and support.min() == support.max():
            one = f"; one sentence = {100 / support.min():.2g} pt"
        ax.set_xlabel(f"accuracy change vs baseline (points{one})", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(order, fontsize=7)
    axes[0].set_ylim(n - 0.5, -0.5)  # largest drop at the top
    fig.tight_layout()
    return save_figure(fig, path)


# -------------------------------------------------------------------------------------- step 3: training


def plot_training_curves(history, path: str | Path | None = None, smooth: int = 50):
    """Loss, learning rate and examples/s against the optimiser step (`TrainingResult.history`, a DataFrame of
    it, or the artifacts' training_history.csv). An entry is the mean over its `steps` optimiser steps (the
    loop logs every few steps); the loss panel shows the entries faintly and a running mean over about
    `smooth` steps; epoch boundaries are dotted. Returns the Figure, or the PNG path when `path` is given.
    """
    from matplotlib.figure import Figure

    if isinstance(history, (str, Path)):
        history = pd.read_csv(history)
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if frame.empty:
        raise ValueError("no training steps to plot")
    steps = frame["step"].to_numpy()
    fig = Figure(figsize=(12, 3.4))
    loss_ax, lr_ax, speed_ax = fig.subplots(1, 3)
    loss = frame["loss"].astype(float)
    per_entry = max(1, int(frame["steps"].median())) if "steps" in frame else 1
    window = max(1, round(smooth / per_entry))
    loss_ax.plot(steps, loss, color="#1f77b4", alpha=0.25, linewidth=0.8,
                 label="per step" if per_entry == 1 else f"mean of each {per_entry} steps")  # fmt: skip
    loss_ax.plot(steps, loss.rolling(window, min_periods=1).mean(), color="#1f77b4", linewidth=1.6,
                 label=f"running mean, {window * per_entry} steps")  # fmt: skip
    loss_ax.set_yscale("log")
    loss_ax.set_title("training loss")
    loss_ax.legend(fontsize=7)
    lr_ax.plot(steps, frame["lr"], color="#ff7f0e")
    lr_ax.set_title("learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    speed = frame["examples_per_s"].astype(float)
    speed_ax.plot(steps, speed, color="#2ca02c", alpha=0.3, linewidth=0.8)
    speed_ax.plot(steps, speed.rolling(window, min_periods=1).median(), color="#2ca02c", linewidth=1.6)
    speed_ax.set_title(f"examples/s (median {speed.median():,.0f})")
    if "epoch" in frame:
        boundaries = steps[1:][np.diff(np.floor(frame["epoch"].to_numpy() - 1e-9)) > 0]
        for ax in (loss_ax, lr_ax, speed_ax):
            for boundary in boundaries:
                ax.axvline(boundary, color="grey", linestyle=":", linewidth=0.8)
    for ax in (loss_ax, lr_ax, speed_ax):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path) if path is not None else fig


def seed_threshold_curves(
    points: pd.DataFrame, across: pd.DataFrame, path: str | Path, baseline_threshold: Any = 0, confidence: float = 0.95,
    label: Callable[[Any], str] = str,
) -> Path:
    """Accuracy against the masking threshold over several training seeds, and the change each threshold makes.

    Left: every seed's run as a small point, the mean over seeds as the line. Right: each seed's change against
    the same seed's baseline as a small point, the mean with its seed-aware interval (resampling seeds and
    sentences): filled where the interval excludes 0, the only effects the report calls real. `points`: one row
    per run (threshold, seed, accuracy, accuracy_delta); `across`: `SeedAwareComparison.across_seeds`.
    Thresholds are placed in the order given (counts and shares of the data alike), each named by `label`
    (`SeedAwareComparison.label`: `1% -> 4` for a share)."""
    from matplotlib.figure import Figure

    order = [baseline_threshold, *(t for t in across.index if t != baseline_threshold)]
    position = {t: i for i, t in enumerate(order)}
    labels = [f"{label(t)} (baseline)" if t == baseline_threshold else label(t) for t in order]
    x = np.array([position[t] for t in points["threshold"]], dtype=float)
    seeds = sorted(points["seed"].unique())
    jitter = {s: (i - (len(seeds) - 1) / 2) * 0.06 for i, s in enumerate(seeds)}
    xj = x + np.array([jitter[s] for s in points["seed"]])
    fig = Figure(figsize=(12, 4.6))
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlabel("masking threshold")
        ax.grid(alpha=0.3)
        ax.margins(x=0.12)
    left.scatter(xj, 100 * points["accuracy"], s=14, color="#9a9a9a", label=f"one seed ({len(seeds)} seeds)", zorder=2)
    means = points.groupby("threshold", sort=False)["accuracy"].mean()
    left.plot(range(len(order)), [100 * means[t] for t in order], "o-", color="#1f77b4", label="mean over seeds", zorder=3)
    left.set_ylabel("accuracy (%)")
    left.set_title("Accuracy, every seed and the mean", fontsize=10)
    left.legend(fontsize=8, loc="best")

    right.axhline(0, color="black", linewidth=0.8)
    right.scatter(xj, 100 * points["accuracy_delta"], s=14, color="#9a9a9a", label="one seed vs its baseline", zorder=2)
    if not across.empty:
        ax_x = np.array([position[t] for t in across.index], dtype=float)
        delta = 100 * across["accuracy_delta"].to_numpy(dtype=float)
        errors = np.vstack([delta - 100 * across["ci_low"].to_numpy(dtype=float), 100 * across["ci_high"].to_numpy(dtype=float) - delta])
        right.errorbar(ax_x, delta, yerr=np.clip(errors, 0, None), fmt="none", ecolor="#1f77b4", capsize=4, zorder=3)
        real = across["real"].to_numpy(bool)
        if real.any():
            right.scatter(ax_x[real], delta[real], color="#1f77b4", zorder=4, label="mean: real (interval excludes 0)")
        if (~real).any():
            right.scatter(ax_x[~real], delta[~real], facecolors="white", edgecolors="#1f77b4", zorder=4,
                          label="mean: interval includes 0")  # fmt: skip
    right.set_ylabel("accuracy - same seed's baseline (points)")
    right.set_title(f"Change with {confidence:.0%} interval over seeds and sentences", fontsize=10)
    right.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)

"""The seed's "Weight Distribution Analysis": what training did to the per-token weights, masked versus kept.

Masked tokens start at 0.0 and kept ones at 1.0, and both stay trainable; a token that never occurs in the
training data gets no gradient (token weights carry no weight decay) and keeps its initial value exactly.
So the learned weights answer: did masked tokens come back to life, and how far did kept tokens move?
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

from wldetect.artifacts import MASK_FILE, PROJECTION_FILE, read_token_mask, training_summary
from wldetect.errors import WLDetectError
from wldetect.steps.count_files import load_token_counts, validate_counts


def load_token_weights(model_path: str | Path) -> np.ndarray:
    """The learned per-token weights (V,) of an artifacts directory."""
    path = Path(model_path) / PROJECTION_FILE
    if not path.is_file():
        raise WLDetectError(f"{model_path}: no {PROJECTION_FILE} (not a trained artifacts directory)")
    tensors = load_file(str(path))
    if "token_weights" not in tensors:
        raise WLDetectError(f"{path}: no 'token_weights' tensor")
    return tensors["token_weights"].reshape(-1).astype(np.float64)


def load_artifact_mask(model_path: str | Path, vocab_size: int) -> np.ndarray:
    """The mask training started from (all True for an unmasked baseline)."""
    mask = read_token_mask(model_path)
    if mask is None:
        return np.ones(vocab_size, dtype=bool)
    if mask.shape != (vocab_size,):
        raise WLDetectError(f"{Path(model_path) / MASK_FILE}: mask shape {mask.shape} does not match {vocab_size} token weights")
    return mask.astype(bool)


@dataclass
class WeightAnalysis:
    weights: np.ndarray  # float64 (V,)
    mask: np.ndarray  # bool (V,), True = kept
    summary: pd.DataFrame  # one row per group (kept / masked)
    counts: np.ndarray | None = None
    baseline_weights: np.ndarray | None = None
    baseline_comparison: pd.DataFrame | None = None

    def report(self) -> str:
        lines = ["Token weight distribution (initial value: kept 1.0, masked 0.0)"]
        for group, row in self.summary.iterrows():
            lines.append(
                f"  {group:<7} {int(row['tokens']):>8,} tokens  mean {row['mean']:+.4f}  std {row['std']:.4f}  "
                f"median {row['median']:+.4f}  [{row['min']:+.3f}, {row['max']:+.3f}]  "
                f"changed {int(row['changed']):,} ({row['changed_pct']:.2f}%)"
            )
        masked = self.summary.loc["masked"] if "masked" in self.summary.index else None
        if masked is not None and masked["tokens"] > 0:
            lines.append(
                f"  {int(masked['changed']):,} masked tokens learned a non-zero weight "
                f"(|w| > 0.01 for {int(masked['above_0.01']):,}): masking is an initialisation, not a freeze"
            )
        return "\n".join(lines)

    def figure(self):
        """Histograms of learned weights (kept vs masked, changed tokens only) and weight against frequency."""
        from matplotlib.figure import Figure

        panels = 2 if self.counts is not None else 1
        fig = Figure(figsize=(6.5 * panels, 4.2))
        axes = fig.subplots(1, panels, squeeze=False)
        axis = axes[0, 0]
        changed = _changed(self.weights, self.mask)
        bins = np.linspace(min(self.weights.min(), -0.1), max(self.weights.max(), 1.1), 80)
        for group, selector, color in (("kept", self.mask, "tab:blue"), ("masked", ~self.mask, "tab:red")):
            values = self.weights[selector & changed]
            if values.size:
                axis.hist(values, bins=bins, alpha=0.6, color=color, label=f"{group} (changed: {values.size:,})", log=True)
        axis.axvline(1.0, color="tab:blue", linestyle=":", linewidth=1)
        axis.axvline(0.0, color="tab:red", linestyle=":", linewidth=1)
        axis.set(xlabel="learned token weight", ylabel="tokens (log scale)", title="Learned token weights")
        axis.legend(fontsize=8)
        if self.counts is not None:
            axis = axes[0, 1]
            seen = self.counts > 0
            for group, selector, color in (("kept", self.mask, "tab:blue"), ("masked", ~self.mask, "tab:red")):
                pick = selector & seen
                axis.scatter(self.counts[pick], self.weights[pick], s=3, alpha=0.35, color=color, label=group)
            axis.set_xscale("log")
            axis.set(xlabel="training occurrences (log scale)", ylabel="learned token weight", title="Weight against frequency")
            axis.legend(fontsize=8, markerscale=4)
        fig.tight_layout()
        return fig


def _changed(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Which weights differ from their initial value (kept 1.0, masked 0.0) at all: a token without gradient
    keeps it bit for bit, so any difference, however small, is training's (a tolerance would count a masked
    token that learned a weight of 1e-8 as never trained, and disagree with step 3's record, which counts
    `!= 0`)."""
    return weights != np.where(mask, np.float32(1.0), np.float32(0.0))


def summarise_weights(weights: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    changed = _changed(weights, mask)
    rows: dict[str, dict[str, Any]] = {}
    for group, selector in (("kept", mask), ("masked", ~mask)):
        values = weights[selector]
        if values.size == 0:
            continue
        rows[group] = {
            "tokens": int(values.size),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(np.median(values)),
            "min": float(values.min()),
            "max": float(values.max()),
            "changed": int(changed[selector].sum()),
            "changed_pct": 100.0 * float(changed[selector].mean()),
            "above_0.01": int((np.abs(values) > 0.01).sum()),
            "negative": int((values < 0).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def analyse_weights(
    model_path: str | Path, baseline_path: str | Path | None = None, token_counts: str | Path | np.ndarray | None = None
) -> WeightAnalysis:
    """Summarise a model's learned token weights; optionally against an unmasked baseline's on the same tokens."""
    weights = load_token_weights(model_path)
    mask = load_artifact_mask(model_path, weights.size)
    counts = None
    if token_counts is not None:
        counts = load_token_counts(token_counts) if isinstance(token_counts, (str, Path)) else validate_counts(token_counts)
        if counts.size != weights.size:
            raise WLDetectError(f"token counts have {counts.size} entries but the model has {weights.size} token weights")
    analysis = WeightAnalysis(weights, mask, summarise_weights(weights, mask), counts)
    if baseline_path is not None:
        baseline = load_token_weights(baseline_path)
        if baseline.size != weights.size:
            raise WLDetectError(f"{baseline_path}: {baseline.size} token weights, expected {weights.size}")
        rows = {}
        for group, selector in (("kept", mask), ("masked", ~mask)):
            if selector.sum() > 1:
                rows[group] = {
                    "tokens": int(selector.sum()),
                    "pearson_r": float(np.corrcoef(weights[selector], baseline[selector])[0, 1]),
                    "mean_abs_difference": float(np.abs(weights[selector] - baseline[selector]).mean()),
                    "baseline_mean": float(baseline[selector].mean()),
                    "this_mean": float(weights[selector].mean()),
                }
        analysis.baseline_weights = baseline
        analysis.baseline_comparison = pd.DataFrame.from_dict(rows, orient="index")
    return analysis


def training_counts_path(model_path: str | Path) -> Path | None:
    """The step 1 counts the model in `model_path` was trained from: the counts written with the token ids
    its training summary names (`token_ids`), else a `token_counts.npy` next to the artifacts; None if neither."""
    from wldetect.steps.count_files import COUNTS_FILE

    model_path = Path(model_path)
    token_ids = (training_summary(model_path) or {}).get("token_ids")
    if token_ids:
        ids_dir = Path(token_ids)
        counts = ids_dir.with_name(ids_dir.name.removesuffix("_token_ids") + ".npy")
        if counts.is_file():
            return counts
    beside = model_path.parent / COUNTS_FILE
    return beside if beside.is_file() else None

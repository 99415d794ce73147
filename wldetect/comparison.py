"""Step 5: compare evaluations of several runs against a baseline, sentence by sentence.

The seed leaves this to a person holding two `flores_dev_results.json` files side by side. Here the runs'
predictions are paired on the same sentences, so every difference comes with a test:

- McNemar's test on the paired correct/wrong outcomes (`statsmodels.stats.contingency_tables.mcnemar`;
  the exact binomial version when fewer than 25 sentences changed, the chi-square version with continuity
  correction otherwise), overall and per language;
- a paired bootstrap confidence interval for the accuracy difference. A resample of n sentences changes the
  difference only through how many "improved" (+1) and "worsened" (-1) sentences it draws, so drawing those
  counts from a multinomial is exactly the index-resampling bootstrap, at any n, in microseconds (seeded).

Inputs (`DIR_OR_RUN`): an artifacts directory, a run record `runs/<run-id>/` (its `artifacts/` is used), or a
`*_results.json` file; from a directory the `<results>_results.json` file is read (`pud`, `devset`,
`flores_dev`, ...: results files are named after their evaluation set; the seed's `flores_dev` by default,
and with `results=None`, as `wldetect compare` and the notebooks pass it, the directory's only one).
All runs must have been evaluated on the same sentences (same set, split and scored languages).

Tables (pandas; rates are fractions, deltas are run minus baseline, also fractions: 0.01 = 1 point)
- `overall` (index run): table, threshold, threshold_share, tokens_masked, vocab_masked_fraction, occurrences_masked_fraction,
  n_sentences, accuracy, f1_macro, f1_weighted, precision_macro, recall_macro, each with `_delta`, then
  ci_low/ci_high (bootstrap interval of accuracy_delta) and p_mcnemar; read left to right it says
  "threshold -> tokens masked -> accuracy".
- `per_language` (one row per non-baseline run and language, sorted by run then largest accuracy drop):
  run, language, support, accuracy_baseline, accuracy, accuracy_delta, f1_baseline, f1, f1_delta,
  worsened, improved, p_mcnemar, flagged (accuracy_delta below -drop_threshold, the seed's
  "Significant Accuracy Drop >1%").
- `significance` (index run, non-baseline): n, both_correct, baseline_only, run_only, both_wrong,
  accuracy_baseline, accuracy, accuracy_delta, ci_low, ci_high, test, statistic, p_value, significant.
- `by_length` (one row per non-baseline run and length 1, 2, 3, 5, full; empty when a run's results have no
  by-length view): run, length, n, accuracy_baseline, accuracy, accuracy_delta, ci_low, ci_high, worsened,
  improved, p_mcnemar: the same paired statistics on each sentence's first K words (`by_length_effect`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wldetect import plots
from wldetect.artifacts import MODEL_CONFIG_FILE
from wldetect.errors import WLDetectError
from wldetect.evaluation import (
    RESULTS_SUFFIX,
    EvaluationResult,
    _check_model_dir,
    _check_table,
    configured_dataset,
    evaluate,
    mask_statistics,
)
from wldetect.io import (
    StagedDirectory,
    atomic_path,
    check_output_directory,
    refuse_finished_run_record,
    write_text_atomic,
)
from wldetect.masking import SEED_REGIME, VALIDATION_LIMIT_PCT
from wldetect.sources.evalsets import load_evaluation_set

DEFAULT_RESULTS = "flores_dev"
EXACT_BELOW = 25  # discordant pairs under which McNemar's exact binomial test is used
_METRICS = ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro")
_MASK_COLUMNS = ("threshold", "threshold_share", "tokens_masked", "vocab_masked_fraction", "occurrences_masked_fraction")


# --------------------------------------------------------------------------------------------- statistics


@dataclass
class McNemarResult:
    both_correct: int
    baseline_only: int  # baseline right, run wrong: sentences the run worsened
    run_only: int  # baseline wrong, run right: sentences the run improved
    both_wrong: int
    test: str  # "exact" or "chi2"
    statistic: float
    p_value: float


def mcnemar_test(baseline_correct: np.ndarray, run_correct: np.ndarray, exact_below: int = EXACT_BELOW) -> McNemarResult:
    """McNemar's test of paired correct/wrong outcomes: exact when fewer than `exact_below` pairs differ."""
    baseline_correct = np.asarray(baseline_correct, dtype=bool)
    run_correct = np.asarray(run_correct, dtype=bool)
    return mcnemar_from_counts(
        int((baseline_correct & run_correct).sum()),
        int((baseline_correct & ~run_correct).sum()),
        int((~baseline_correct & run_correct).sum()),
        int((~baseline_correct & ~run_correct).sum()),
        exact_below,
    )


def mcnemar_from_counts(
    both_correct: int, baseline_only: int, run_only: int, both_wrong: int, exact_below: int = EXACT_BELOW
) -> McNemarResult:
    """McNemar's test from the 2x2 table of paired outcomes."""
    from statsmodels.stats.contingency_tables import mcnemar

    exact = baseline_only + run_only < exact_below
    outcome = mcnemar([[both_correct, baseline_only], [run_only, both_wrong]], exact=exact, correction=True)
    return McNemarResult(
        both_correct, baseline_only, run_only, both_wrong, "exact" if exact else "chi2",
        float(outcome.statistic), float(outcome.pvalue),
    )  # fmt: skip


def paired_bootstrap_ci(
    baseline_correct: np.ndarray,
    run_correct: np.ndarray,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference, low, high): run accuracy minus baseline accuracy with a paired percentile bootstrap CI.

    Equivalent to resampling sentence indices with replacement (see the module docstring), computed by
    drawing the numbers of improved and worsened sentences from a multinomial.
    """
    baseline_correct = np.asarray(baseline_correct, dtype=bool)
    run_correct = np.asarray(run_correct, dtype=bool)
    n = len(baseline_correct)
    if n == 0 or len(run_correct) != n:
        raise ValueError("two equally long, non-empty outcome vectors expected")
    improved = int((run_correct & ~baseline_correct).sum())
    worsened = int((baseline_correct & ~run_correct).sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [improved / n, worsened / n, (n - improved - worsened) / n], size=n_resamples)
    differences = (draws[:, 0] - draws[:, 1]) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return (improved - worsened) / n, float(low), float(high)


# ------------------------------------------------------------------------------------------- by length

BY_LENGTH_COLUMNS = (
    "run", "length", "n", "accuracy_baseline", "accuracy", "accuracy_delta", "ci_low", "ci_high", "worsened",
    "improved", "p_mcnemar",
)  # fmt: skip


def by_length_effect(
    baseline: EvaluationResult,
    run: EvaluationResult,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    label: str = "run",
) -> pd.DataFrame:
    """The run's accuracy against the baseline's at each text length (first 1, 2, 3, 5 words, then full
    sentences): McNemar's test and the paired bootstrap interval on the fragments, paired by
    `(language, id, length)`. Masking may leave full sentences alone and still cost short texts, where a few
    rare tokens carry the whole decision. Empty (with the columns) when either result has no by-length view."""
    if baseline.by_length is None or run.by_length is None:
        return pd.DataFrame(columns=list(BY_LENGTH_COLUMNS))
    keys = ["language", "id", "length"]
    full = {"length": "full"}
    base = pd.concat(
        [baseline.by_length[baseline.by_length["in_model"]], baseline.scored.assign(**full)], ignore_index=True
    ).astype({"length": str})
    other = pd.concat([run.by_length[run.by_length["in_model"]], run.scored.assign(**full)], ignore_index=True).astype(
        {"length": str}
    )
    paired = base[keys + ["correct"]].merge(other[keys + ["correct"]], on=keys, how="outer", suffixes=("_base", "_run"), indicator=True)
    unpaired = paired["_merge"] != "both"
    if unpaired.any():
        row = paired[unpaired].iloc[0]
        raise WLDetectError(
            f"by length: {int(unpaired.sum())} fragments are not in both evaluations (first: {row['language']} "
            f"{row['id']} at length {row['length']}); evaluate both on the same set"
        )
    rows = []
    order = sorted({k for k in paired["length"] if k != "full"}, key=int) + ["full"]
    for length in order:
        group = paired[paired["length"] == length]
        base_correct = group["correct_base"].to_numpy(bool)
        correct = group["correct_run"].to_numpy(bool)
        test = mcnemar_test(base_correct, correct)
        difference, low, high = paired_bootstrap_ci(base_correct, correct, n_resamples, confidence, seed)
        rows.append(
            {
                "run": label, "length": length, "n": len(group), "accuracy_baseline": float(base_correct.mean()),
                "accuracy": float(correct.mean()), "accuracy_delta": difference, "ci_low": low, "ci_high": high,
                "worsened": test.baseline_only, "improved": test.run_only, "p_mcnemar": test.p_value,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(BY_LENGTH_COLUMNS))


def by_length_table(
    baseline: ComparedRun, runs: Sequence[ComparedRun], n_resamples: int, confidence: float, seed: int
) -> pd.DataFrame:
    """`by_length_effect` of every run against the baseline, one table (empty without by-length views)."""
    frames = [by_length_effect(baseline.result, run.result, n_resamples, confidence, seed, run.label) for run in runs]
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(BY_LENGTH_COLUMNS))


def describe_by_length(table: pd.DataFrame, confidence: float = 0.95) -> str:
    """The by-length table in words and figures, one line per run and length, for the summary."""
    if table.empty:
        return ""
    lines = [
        "Accuracy by text length (first K words; CJK/Thai 2K characters), paired on the same fragments:",
        f"  {'run':<28} {'length':>6} {'n':>7} {'acc base':>9} {'acc':>8} {'Δ pp':>7} {f'{confidence:.0%} CI (pp)':>16} {'McNemar p':>10}",
    ]
    for r in table.itertuples():
        ci = f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"
        lines.append(
            f"  {str(r.run)[:28]:<28} {r.length:>6} {r.n:>7,} {r.accuracy_baseline:>9.2%} {r.accuracy:>8.2%} "
            f"{100 * r.accuracy_delta:>+7.2f} {ci:>16} {r.p_mcnemar:>10.3g}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ inputs


@dataclass
class ComparedRun:
    label: str
    source: Path | None  # what the user named (directory or results file); None for in-memory results
    result: EvaluationResult

    @property
    def mask(self) -> dict[str, Any]:
        return self.result.mask or {}


def results_file(path: str | Path, results: str | None = DEFAULT_RESULTS) -> Path:
    """The results JSON a DIR_OR_RUN argument points to (`results=None`: its only one, else flores_dev)."""
    path = Path(path).expanduser()
    if path.is_file():
        if not path.name.endswith(".json"):
            raise WLDetectError(f"{path}: expected an artifacts directory, a run directory or a *_results.json file")
        return path
    if not path.is_dir():
        raise WLDetectError(f"{path}: no such directory or results file")
    candidates = [path, path / "artifacts"]
    if results is None:  # the one evaluation the directory has (training evaluates on its configured set)
        for directory in candidates:
            present = sorted(p.name[: -len(RESULTS_SUFFIX)] for p in directory.glob(f"*{RESULTS_SUFFIX}"))
            if len(present) == 1 or DEFAULT_RESULTS in present:
                results = present[0] if len(present) == 1 else DEFAULT_RESULTS
                break
            if len(present) > 1:
                raise WLDetectError(
                    f"{directory}: {len(present)} evaluations ({', '.join(present)}); choose one with --results NAME"
                )
        else:
            results = DEFAULT_RESULTS
    for directory in candidates:
        found = directory / f"{results}{RESULTS_SUFFIX}"
        if found.is_file():
            return found
    for directory in candidates:
        if (directory / MODEL_CONFIG_FILE).is_file():
            others = sorted(p.name[: -len(RESULTS_SUFFIX)] for p in directory.glob(f"*{RESULTS_SUFFIX}"))
            hint = f" (evaluated here: {', '.join(others)}; choose one with --results)" if others else ""
            raise WLDetectError(
                f"{directory}: no {results}{RESULTS_SUFFIX}; run `wldetect eval --model-path {directory}` first{hint}"
            )
    raise WLDetectError(f"{path}: not an artifacts directory (no {MODEL_CONFIG_FILE}) nor a run directory with artifacts/")


def _default_label(path: Path, result: EvaluationResult) -> str:
    if path.is_file():
        directory = path.parent
    else:
        directory = path
    name = directory.name
    if name == "artifacts" and directory.parent.name:
        name = directory.parent.name  # a run record: its run id says more than "artifacts"
    return name if result.table == "e3m4" else f"{name}:{result.table}"


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def load_runs(
    runs: Sequence[str | Path | EvaluationResult], results: str | None = DEFAULT_RESULTS, labels: Sequence[str] | None = None
) -> list[ComparedRun]:
    loaded = []
    for item in runs:
        if isinstance(item, EvaluationResult):
            loaded.append((None, item, None))
        else:
            path = Path(item).expanduser()
            result = EvaluationResult.load(results_file(path, results))
            if result.mask is None:  # evaluated before a mask statistics file existed: look again
                result.mask = mask_statistics(result.paths["results"].parent)
            loaded.append((path, result, _default_label(path, result)))
    if labels is not None:
        if len(labels) != len(loaded):
            raise WLDetectError(f"{len(labels)} labels for {len(loaded)} runs")
        names = [str(label) for label in labels]
    else:
        names = [label or f"{r.model_path.name}:{r.table}" for _, r, label in loaded]
    return [ComparedRun(label, path, result) for label, (path, result, _) in zip(_unique(names), loaded)]


def _paired_outcomes(baseline: ComparedRun, runs: list[ComparedRun]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Correct/wrong of every run on the baseline's scored sentences, aligned on (language, id)."""
    keys = ["language", "id"]
    base = baseline.result.scored[keys + ["correct"]].set_index(keys).sort_index()
    outcomes = {baseline.label: base["correct"].to_numpy(bool)}
    base_data = baseline.result.dataset
    for run in runs:
        data = run.result.dataset
        for key in ("kind", "name", "split"):
            if data.get(key) != base_data.get(key):
                raise WLDetectError(
                    f"runs {baseline.label} and {run.label} were evaluated on different sets "
                    f"({_describe(base_data)} vs {_describe(data)}): evaluate both on the same set and split"
                )
        other = run.result.scored[keys + ["correct"]].set_index(keys).sort_index()
        if not other.index.equals(base.index):
            only_base = len(base.index.difference(other.index))
            only_run = len(other.index.difference(base.index))
            raise WLDetectError(
                f"runs {baseline.label} and {run.label} scored different sentences ({only_base} only in the first, "
                f"{only_run} only in the second; do the models know the same languages?)"
            )
        outcomes[run.label] = other["correct"].to_numpy(bool)
    return base.reset_index()[keys], outcomes


def _describe(dataset: dict[str, Any]) -> str:
    split = f" split {dataset['split']}" if dataset.get("split") else ""
    return f"{dataset.get('kind')} {dataset.get('source')}{split}"


# -------------------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    runs: list[ComparedRun]
    overall: pd.DataFrame
    per_language: pd.DataFrame
    significance: pd.DataFrame
    drop_threshold: float
    confidence: float
    paths: dict[str, Path] = field(default_factory=dict)
    by_length: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BY_LENGTH_COLUMNS)))

    @property
    def baseline(self) -> str:
        return self.runs[0].label

    @property
    def flagged(self) -> pd.DataFrame:
        return self.per_language[self.per_language["flagged"]]

    def summary(self, top: int = 10) -> str:
        o = self.overall
        lines = [f"Baseline: {self.baseline}   ({int(o['n_sentences'].iloc[0]):,} paired sentences)"]
        header = (
            f"{'run':<28} {'table':<6} {'threshold':>16} {'masked tokens':>16} {'masked occ.':>11} "
            f"{'accuracy':>9} {'Δ acc (pp)':>10} {f'{self.confidence:.0%} CI (pp)':>16} {'McNemar p':>10} "
            f"{'F1 macro':>8} {'Δ F1':>8}"
        )
        lines.append(header)
        for label, row in o.iterrows():
            threshold = "none" if pd.isna(row["threshold"]) else f"{row['threshold']:g}"
            if isinstance(row.get("threshold_share"), str) and row["threshold_share"]:
                threshold = f"{row['threshold_share']} -> {threshold}"
            masked = (
                "-" if pd.isna(row["tokens_masked"])
                else f"{int(row['tokens_masked']):,} ({row['vocab_masked_fraction']:.1%})"
            )  # fmt: skip
            occurrences = "-" if pd.isna(row["occurrences_masked_fraction"]) else f"{row['occurrences_masked_fraction']:.4%}"
            if label == self.baseline:
                delta = ci = p = "baseline"
                f1_delta = ""
            else:
                delta = f"{100 * row['accuracy_delta']:+.2f}"
                ci = f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
                p = f"{row['p_mcnemar']:.3g}"
                f1_delta = f"{row['f1_macro_delta']:+.4f}"
            lines.append(
                f"{str(label)[:28]:<28} {row['table']:<6} {threshold:>16} {masked:>16} {occurrences:>11} "
                f"{row['accuracy']:>9.2%} {delta:>10} {ci:>16} {p:>10} {row['f1_macro']:>8.4f} {f1_delta:>8}"
            )
        lines.extend(_seed_regime_lines(o))
        for run in self.runs[1:]:
            rows = self.per_language[self.per_language["run"] == run.label]
            flagged = rows[rows["flagged"]]
            lines.append("")
            lines.append(
                f"{run.label}: {len(flagged)} of {len(rows)} languages drop more than "
                f"{100 * self.drop_threshold:g} point(s) in accuracy"
            )
            if not rows.empty:
                lines.append(f"  {'language':<10} {'support':>7} {'acc base':>9} {'acc':>8} {'Δ pp':>7} {'Δ F1':>8} {'p':>7}")
                for r in rows.head(top).itertuples():
                    mark = "  <-- flagged" if r.flagged else ""
                    lines.append(
                        f"  {r.language:<10} {r.support:>7} {r.accuracy_baseline:>9.2%} {r.accuracy:>8.2%} "
                        f"{100 * r.accuracy_delta:>+7.2f} {r.f1_delta:>+8.4f} {r.p_mcnemar:>7.3g}{mark}"
                    )
        if not self.by_length.empty:
            lines.extend(["", describe_by_length(self.by_length, self.confidence)])
        for key, path in self.paths.items():
            lines.append(f"{key}: {path}")
        return "\n".join(lines)

    def verdict(self, alpha: float = 0.05, languages_named: int = 5) -> str:
        """What the comparison shows, in words: for each run against the baseline, how much it masked, whether
        accuracy moved significantly (McNemar at `alpha`), and which languages lost most; then one sentence
        over all runs. This is the report's conclusion, so it only states what the tables above hold."""
        lines = []
        base = self.overall.loc[self.baseline]
        significant_runs = []
        for label, row in self.overall.iterrows():
            if label == self.baseline:
                continue
            masked = ""
            if not pd.isna(row["tokens_masked"]):
                masked = (
                    f" masks {int(row['tokens_masked']):,} tokens ({row['vocab_masked_fraction']:.1%} of the vocabulary, "
                    f"{row['occurrences_masked_fraction']:.2%} of the training tokens);"
                )
            change = (
                f" accuracy {base['accuracy']:.2%} -> {row['accuracy']:.2%} ({100 * row['accuracy_delta']:+.2f} pp, "
                f"{self.confidence:.0%} CI [{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}], "
                f"McNemar p = {row['p_mcnemar']:.2g})"
            )
            significant = row["p_mcnemar"] < alpha
            if significant:
                significant_runs.append(str(label))
            rows = self.per_language[self.per_language["run"] == label]
            losers = rows[rows["flagged"] & (rows["p_mcnemar"] < alpha)].head(languages_named)
            if significant:
                judgement = "a significant " + ("loss" if row["accuracy_delta"] < 0 else "gain")
            else:
                judgement = "no significant difference"
            detail = ""
            if not losers.empty:
                named = ", ".join(
                    f"{r.language} {100 * r.accuracy_baseline:.1f} % -> {100 * r.accuracy:.1f} %" for r in losers.itertuples()
                )
                detail = f" Languages that lose significantly: {named}."
            lines.append(f"{label}:{masked}{change}: {judgement}.{detail}")
        if not significant_runs:
            lines.append(f"No run differs significantly from the baseline {self.baseline} (McNemar, alpha {alpha:g}).")
        else:
            lines.append(
                f"{len(significant_runs)} of {len(self.overall) - 1} runs differ significantly from the baseline "
                f"{self.baseline} (McNemar, alpha {alpha:g}): {', '.join(significant_runs)}."
            )
        return "\n".join(lines)

    def save(self, output_dir: str | Path, figures: bool = True) -> dict[str, Path]:
        """Write overall.csv, per_language.csv, significance.csv, by_length.csv (when the runs have the view),
        summary.txt and the two figures.

        Staged (`wldetect.io.StagedDirectory`): all files are written first and moved in together, so a
        failure (full disk, unwritable directory) leaves no mix of an old and a new comparison.
        """
        final_dir = Path(output_dir)
        with StagedDirectory(final_dir, swap=False, what="--output") as staged:
            paths = self._write(staged.staging, figures, final_dir)
            staged.commit(order=["summary.txt"])
        self.paths = {key: final_dir / path.name for key, path in paths.items()}
        return self.paths

    def _write(self, output_dir: Path, figures: bool, final_dir: Path) -> dict[str, Path]:
        """Write into `output_dir` (the staging directory); the summary names the files where they will be."""
        paths = {}
        for name, table in (("overall", self.overall), ("per_language", self.per_language), ("significance", self.significance)):
            path = output_dir / f"{name}.csv"
            with atomic_path(path) as tmp:
                table.to_csv(tmp, index=name != "per_language", float_format="%.6g")
            paths[name] = path
        if not self.by_length.empty:
            with atomic_path(output_dir / "by_length.csv") as tmp:
                self.by_length.to_csv(tmp, index=False, float_format="%.6g")
            paths["by_length"] = output_dir / "by_length.csv"
        if figures:
            paths["threshold_figure"] = plots.threshold_curves(
                self.overall, output_dir / "accuracy_vs_threshold.png", baseline=self.baseline, confidence=self.confidence
            )
            paths["language_figure"] = plots.language_delta_bars(
                self.per_language, output_dir / "language_deltas.png", drop_threshold=self.drop_threshold
            )
        self.paths = {key: final_dir / path.name for key, path in paths.items()}
        paths["summary"] = write_text_atomic(output_dir / "summary.txt", f"{self.summary()}\n\n{self.verdict()}\n")
        return paths


def _seed_regime_lines(overall: pd.DataFrame) -> list[str]:
    """The seed's row under the mask columns (its threshold 10 on Gemma3-27B and OpenLID-v2) and which runs mask
    less than the seed's 0.01 % validation line: a sweep on another corpus reads its thresholds against them."""
    seed = SEED_REGIME
    lines = [
        f"{seed.short_name:<28} {'':<6} {seed.threshold:>16} {f'({seed.vocab_masked_pct:.2f}%)':>16} "
        f"{f'{seed.data_masked_pct:.4f}%':>11}   the seed's regime, for reference (not a run)"
    ]
    shares = pd.to_numeric(overall["occurrences_masked_fraction"], errors="coerce")
    masked = pd.to_numeric(overall["tokens_masked"], errors="coerce").fillna(0) > 0
    within = [str(label) for label in overall.index[masked & (100 * shares < VALIDATION_LIMIT_PCT)]]
    above = [str(label) for label in overall.index[masked & (100 * shares >= VALIDATION_LIMIT_PCT)]]
    lines.append(
        f"The seed's validation line (masked tokens < {VALIDATION_LIMIT_PCT:g} % of the training tokens): "
        f"within: {', '.join(within) or 'none'}; above: {', '.join(above) or 'none'}"
    )
    return lines


def compare_runs(
    runs: Sequence[str | Path | EvaluationResult],
    results: str | None = DEFAULT_RESULTS,
    labels: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
    drop_threshold: float = 0.01,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    verbose: bool = True,
) -> Comparison:
    """Compare runs (the first is the baseline) on the same sentences; save tables and figures to `output_dir`.

    `runs`: artifacts directories, run directories, results JSON files, or `EvaluationResult`s. `results`
    names the evaluation to read from a directory (`flores_dev`, `pud`, `devset`, `flores_dev_fp32`, ...).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise WLDetectError(f"--resamples {n_resamples}: expected a whole number of bootstrap resamples >= 1")
    if output_dir is not None:
        check_output_directory(output_dir, "--output")
        refuse_finished_run_record(output_dir, "--output")
    loaded = load_runs(runs, results, labels)
    if len(loaded) < 2:
        raise WLDetectError("compare needs at least two runs: a baseline and one to compare with it")
    baseline = loaded[0]
    keys, outcomes = _paired_outcomes(baseline, loaded[1:])
    base_correct = outcomes[baseline.label]
    base_metrics = baseline.result.overall

    overall_rows, significance_rows, language_frames = [], [], []
    for run in loaded:
        metrics = run.result.overall
        row: dict[str, Any] = {"run": run.label, "table": run.result.table}
        for column in _MASK_COLUMNS:
            value = run.mask.get(column)
            row[column] = np.nan if value is None else value
        row["n_sentences"] = int(metrics["n_sentences"])
        for metric in _METRICS:
            row[metric] = float(metrics[metric])
            row[f"{metric}_delta"] = float(metrics[metric]) - float(base_metrics[metric])
        if run is baseline:
            row.update(ci_low=0.0, ci_high=0.0, p_mcnemar=1.0)
        else:
            correct = outcomes[run.label]
            test = mcnemar_test(base_correct, correct)
            difference, low, high = paired_bootstrap_ci(base_correct, correct, n_resamples, confidence, seed)
            row.update(ci_low=low, ci_high=high, p_mcnemar=test.p_value)
            significance_rows.append(
                {
                    "run": run.label,
                    "n": len(correct),
                    "both_correct": test.both_correct,
                    "baseline_only": test.baseline_only,
                    "run_only": test.run_only,
                    "both_wrong": test.both_wrong,
                    "accuracy_baseline": float(base_correct.mean()),
                    "accuracy": float(correct.mean()),
                    "accuracy_delta": difference,
                    "ci_low": low,
                    "ci_high": high,
                    "test": test.test,
                    "statistic": test.statistic,
                    "p_value": test.p_value,
                    "significant": test.p_value < alpha,
                }
            )
            language_frames.append(_per_language(baseline, run, keys, base_correct, correct, drop_threshold))
        overall_rows.append(row)

    overall = pd.DataFrame(overall_rows).set_index("run")
    significance = pd.DataFrame(significance_rows).set_index("run")
    per_language = pd.concat(language_frames, ignore_index=True)
    comparison = Comparison(loaded, overall, per_language, significance, drop_threshold, confidence)
    comparison.by_length = by_length_table(baseline, loaded[1:], n_resamples, confidence, seed)
    if output_dir is not None:
        comparison.save(output_dir)
    if verbose:
        print(comparison.summary())
    return comparison


def _per_language(
    baseline: ComparedRun, run: ComparedRun, keys: pd.DataFrame, base_correct: np.ndarray, correct: np.ndarray, drop_threshold: float
) -> pd.DataFrame:
    base_table = baseline.result.per_language
    table = run.result.per_language
    rows = []
    codes, uniques = pd.factorize(keys["language"])
    cell = 2 * base_correct.astype(np.int64) + correct.astype(np.int64)  # 3 both right, 2 worse, 1 better, 0 both wrong
    counts = np.bincount(codes * 4 + cell, minlength=4 * len(uniques)).reshape(len(uniques), 4)
    position = {code: i for i, code in enumerate(uniques)}
    for code in base_table.index:
        both_wrong, run_only, baseline_only, both_correct = (int(n) for n in counts[position[code]])
        test = mcnemar_from_counts(both_correct, baseline_only, run_only, both_wrong)
        accuracy_delta = float(table.at[code, "accuracy"]) - float(base_table.at[code, "accuracy"])
        rows.append(
            {
                "run": run.label,
                "language": code,
                "support": int(base_table.at[code, "support"]),
                "accuracy_baseline": float(base_table.at[code, "accuracy"]),
                "accuracy": float(table.at[code, "accuracy"]),
                "accuracy_delta": accuracy_delta,
                "f1_baseline": float(base_table.at[code, "f1"]),
                "f1": float(table.at[code, "f1"]),
                "f1_delta": float(table.at[code, "f1"]) - float(base_table.at[code, "f1"]),
                "worsened": test.baseline_only,
                "improved": test.run_only,
                "p_mcnemar": test.p_value,
                "flagged": accuracy_delta < -drop_threshold - 1e-12,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["accuracy_delta", "f1_delta", "language"], kind="stable").reset_index(drop=True)


def evaluate_tables(
    model_path: str | Path,
    tables: Iterable[str] = ("fp32", "e4m3fn", "e3m4"),
    dataset: str | Path | None = None,
    split: str = "dev",
    output_dir: str | Path | None = None,
    verbose: bool = True,
    **compare_options: Any,
):
    """Evaluate several lookup tables of one model on the same sentences and compare them (first = baseline).

    Returns the step-5 `Comparison` (overall metrics, per-language deltas, McNemar and bootstrap against the
    first table); each table's results are saved as by `evaluate`.
    """
    model_path = _check_model_dir(model_path)
    tables = [_check_table(t) for t in tables]
    if len(set(tables)) != len(tables) or not tables:
        raise WLDetectError(f"tables {tables}: give each table once")
    evaluation_set = load_evaluation_set(dataset if dataset is not None else configured_dataset(model_path), split)
    results = []
    for table in tables:
        results.append(
            evaluate(model_path, split=split, table=table, output_dir=output_dir, verbose=verbose, evaluation_set=evaluation_set)
        )
    return compare_runs(results, labels=tables, verbose=verbose, **compare_options)

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wldetect.artifacts import MODEL_CONFIG_FILE, read_mask_record, training_summary
from wldetect.errors import WLDetectError
from wldetect.io import StagedDirectory, atomic_path, check_output_directory, write_text_atomic
from wldetect.records import refuse_finished_run_record
from wldetect.steps import plots
from wldetect.steps.masking import SEED_REGIME, VALIDATION_LIMIT_PCT
from wldetect.steps.results import RESULTS_SUFFIX, EvaluationResult, describe_references

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
    rows = []
    for length, base_correct, correct in paired_by_length(baseline, run):
        test = mcnemar_test(base_correct, correct)
        difference, low, high = paired_bootstrap_ci(base_correct, correct, n_resamples, confidence, seed)
        rows.append(
            {
                "run": label, "length": length, "n": len(correct), "accuracy_baseline": float(base_correct.mean()),
                "accuracy": float(correct.mean()), "accuracy_delta": difference, "ci_low": low, "ci_high": high,
                "worsened": test.baseline_only, "improved": test.run_only, "p_mcnemar": test.p_value,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(BY_LENGTH_COLUMNS))


def paired_by_length(baseline: EvaluationResult, run: EvaluationResult) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(length, baseline correct, run correct) per length ("1", "2", "3", "5", then "full"), paired by
    `(language, id, length)` and in that order, so the arrays of every run of a sweep line up sentence for
    sentence (what the seed-aware bootstrap needs). A fragment missing on one side is an error."""
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
    paired = paired.sort_values(keys, kind="stable")
    order = sorted({k for k in paired["length"] if k != "full"}, key=int) + ["full"]
    groups = [paired[paired["length"] == length] for length in order]
    return [(length, g["correct_base"].to_numpy(bool), g["correct_run"].to_numpy(bool)) for length, g in zip(order, groups)]


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

    @property
    def seed(self) -> int | None:
        """The training seed of the model evaluated (`run_seed`)."""
        return run_seed(self.result)


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
                result.mask = read_mask_record(result.paths["results"].parent)
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
    show_references: bool = True  # False for the per-seed parts of a seed-aware report, which shows them once

    @property
    def baseline(self) -> str:
        return self.runs[0].label

    @property
    def flagged(self) -> pd.DataFrame:
        return self.per_language[self.per_language["flagged"]]

    @property
    def seeds(self) -> list[int]:
        """The training seeds of the compared models (those recorded; `run_seed`)."""
        return sorted({s for s in (run.seed for run in self.runs) if s is not None})

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
        references = describe_references_of(self)
        if references and self.show_references:
            lines.extend(["", references])
        for key, path in self.paths.items():
            lines.append(f"{key}: {path}")
        return "\n".join(lines)

    def verdict(self, alpha: float = 0.05, languages_named: int = 5) -> str:
        """What the comparison shows, in words: for each run against the baseline, how much it masked, whether
        accuracy moved significantly (McNemar at `alpha`), and which languages lost most; then one sentence
        over all runs. This is the report's conclusion, so it only states what the tables above hold. Between
        models trained apart it starts by saying that one seed per run ignores seed variance (`one_seed_note`)."""
        lines = [note] if (note := one_seed_note(self.runs)) else []
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
    if (groups := seed_groups(loaded)) is not None:  # several seeds: each run against its own seed's baseline
        options = dict(drop_threshold=drop_threshold, confidence=confidence, n_resamples=n_resamples, seed=seed, alpha=alpha)
        seeded = compare_seeds(loaded, groups, **options)
        if output_dir is not None:
            seeded.save(output_dir)
        if verbose:
            print(seeded.summary())
        return seeded
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


# ------------------------------------------------------------------------------------------------- seeds
#
# One training run per threshold measures masking and one seed's luck together: a 0.1-point difference can
# be either. With several seeds per threshold, each seed's runs are paired with the same seed's baseline (the
# first threshold), and the effect of a threshold is the mean over seeds of (run - baseline accuracy), with an
# interval that resamples seeds as well as sentences. An effect is called real only when that interval
# excludes 0; a language is flagged only when it drops in every seed.


def _training_manifest(model_path: str | Path) -> dict[str, Any]:
    """The manifest of the 03_train run record holding `model_path`, or {} (no record, another kind, damaged)."""
    from wldetect.records import MANIFEST, owning_run
    from wldetect.workflow.runs import read_manifest

    producer = owning_run(model_path)
    if producer is None:
        return {}
    try:
        manifest = read_manifest(producer / MANIFEST)
    except WLDetectError:
        return {}
    return manifest if manifest.get("kind") == "03_train" else {}


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_seed(result: EvaluationResult) -> int | None:
    """The training seed of the model `result` evaluated: `training.seed` in its `training_summary.json` (every
    training run writes it, whether the seed was chosen or the config's), else the `seed` in the manifest of
    the run record holding the model; None when neither tells (a model from elsewhere, in-memory results)."""
    model_path = Path(result.model_path)
    try:
        return _whole(training_summary(model_path)["config"]["training"]["seed"])
    except (KeyError, TypeError):
        return _whole(_training_manifest(model_path).get("seed"))


def run_threshold(run: ComparedRun) -> Any:
    """The threshold `run`'s model was trained at, as its run record names it (what the sweep asked for), else
    its mask record's; 0 for a model trained without a mask; None when nothing tells."""
    recorded = _training_manifest(run.result.model_path).get("threshold")
    if recorded is not None:
        return recorded
    if run.mask.get("threshold") is not None:
        return run.mask["threshold"]
    return 0 if run.result.mask is not None and not run.mask.get("tokens_masked") else None


@dataclass
class SeedGroups:
    """Compared runs grouped by seed, then threshold; `thresholds` in the order given, the baseline's first."""

    runs: dict[int, dict[Any, ComparedRun]]
    thresholds: list[Any]

    @property
    def baseline_threshold(self) -> Any:
        return self.thresholds[0]


def seed_groups(loaded: Sequence[ComparedRun]) -> SeedGroups | None:
    """The runs grouped by (seed, threshold) when they can be paired by seed: more than one seed, every run's
    seed and threshold known, each (seed, threshold) once, and every seed with a run at the first run's
    threshold (its baseline). None otherwise: one seed (or unknown seeds) is an ordinary comparison."""
    seeds = [run.seed for run in loaded]
    if None in seeds or len(set(seeds)) < 2:
        return None
    thresholds = [run_threshold(run) for run in loaded]
    if any(t is None for t in thresholds):
        return None
    grouped: dict[int, dict[Any, ComparedRun]] = {}
    for run, s, t in zip(loaded, seeds, thresholds):
        group = grouped.setdefault(s, {})
        if t in group:
            return None
        group[t] = run
    if any(thresholds[0] not in group for group in grouped.values()):
        return None
    return SeedGroups(grouped, ordered_thresholds(thresholds))


def ordered_thresholds(thresholds: Sequence[Any]) -> list[Any]:
    """The distinct thresholds, the first (the baseline's) first, then the others by count: a sweep's runs
    arrive in run-id order (t10 before t1pct), which would draw 0, 10, 4."""
    distinct = list(dict.fromkeys(thresholds))
    rest = distinct[1:]
    if all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in rest):
        rest = sorted(rest)
    return distinct[:1] + rest


def threshold_label(threshold: Any, share: Any = None) -> str:
    """A threshold as reports write it: the count, or `1% -> 4` for a share resolved to a count."""
    return f"{share} -> {threshold}" if isinstance(share, str) and share else str(threshold)


def one_seed_note(runs: Sequence[ComparedRun]) -> str | None:
    """The sentence a comparison of models trained apart begins its verdict with when it cannot include seed
    variance; None for evaluations of one model (its lookup tables), where no training seed differs."""
    models = {str(Path(run.result.model_path).resolve()) for run in runs}
    if len(models) < 2:
        return None
    seeds = sorted({s for s in (run.seed for run in runs) if s is not None})
    if len(seeds) <= 1:
        which = f"one training seed (seed {seeds[0]})" if seeds else "one training run per model (seeds not recorded)"
        return (
            f"One seed: {which}, so this verdict ignores seed-to-seed variance and a small difference may be one "
            "seed's luck; train every threshold with several seeds (`wldetect sweep --seeds 0,1,2`) to include it."
        )
    return (
        f"The runs were trained with different seeds ({', '.join(map(str, seeds))}) but cannot be paired by seed "
        "(each seed needs one run at the baseline's threshold and at most one run per threshold): every run is "
        f"compared with the one baseline {runs[0].label}, and this verdict mixes masking with seed-to-seed variance."
    )


def seed_bootstrap_ci(
    baseline: Sequence[np.ndarray],
    runs: Sequence[np.ndarray],
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference, low, high): the mean over seeds of run minus baseline accuracy (seed k's run against seed
    k's baseline), with a hierarchical paired percentile bootstrap interval.

    Each resample draws the seeds with replacement, then n sentences with replacement: the same sentences for
    every seed drawn and for run and baseline (paired), since all were scored on one set of sentences. So the
    interval holds seed-to-seed variation as well as the sentences' sampling noise; with one seed it is the
    paired sentence bootstrap (`paired_bootstrap_ci`). Only sentences some seed changed move the statistic,
    so the sentence draw is made over those alone: how many of the n draws land on them is binomial, and
    each lands on one of them uniformly: the same distribution as drawing n indices, at the cost of the changed sentences.
    With few seeds the seed draw sees only those seeds' effects: two seeds that agree by chance give a
    narrower interval than the seed variance deserves; three or more are better.
    """
    base = [np.asarray(b, dtype=bool) for b in baseline]
    run = [np.asarray(r, dtype=bool) for r in runs]
    lengths = {len(x) for x in base + run}
    if not base or len(base) != len(run) or len(lengths) != 1 or 0 in lengths:
        raise ValueError("one baseline and one run outcome vector per seed expected, all equally long and non-empty")
    d = np.stack([r.astype(np.int8) - b.astype(np.int8) for b, r in zip(base, run)])  # seeds x sentences
    n_seeds, n = d.shape
    difference = float(d.mean())
    changed = np.flatnonzero(d.any(axis=0))
    if changed.size == 0:
        return difference, 0.0, 0.0
    dm = d[:, changed].astype(np.float64)
    m = changed.size
    rng = np.random.default_rng(seed)
    statistics = np.empty(n_resamples)
    block = max(1, 2_000_000 // (m + n_seeds))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=size) / n_seeds
        hits = rng.binomial(n, m / n, size=size)  # draws landing on changed sentences; which ones, uniformly:
        drawn = np.repeat(np.arange(size), hits) * m + rng.integers(0, m, size=int(hits.sum()))
        sentence_counts = np.bincount(drawn, minlength=size * m).reshape(size, m)
        statistics[start : start + size] = ((seed_weights @ dm) * sentence_counts).sum(axis=1) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistics, [tail, 1 - tail])
    return difference, float(low), float(high)


@dataclass
class SeedEffect:
    """A threshold's effect over seeds: each seed's difference and McNemar p against the same seed's
    baseline, their mean, and the seed-aware interval (`seed_bootstrap_ci`)."""

    seeds: list[int]
    differences: list[float]  # per seed: run minus baseline accuracy
    p_values: list[float]  # per seed: McNemar's test of run against baseline
    difference: float  # mean over seeds
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    @property
    def same_sign(self) -> int:
        """In how many seeds the difference has the sign of the mean (0 counts with 0)."""
        return int(sum(np.sign(d) == np.sign(self.difference) for d in self.differences))

    @property
    def real(self) -> bool:
        """Whether the seed-aware interval excludes 0: the only test of an effect this report calls real."""
        return self.ci_low > 0 or self.ci_high < 0

    def words(self) -> str:
        """The effect in one clause: mean, interval, each seed, sign agreement and whether it is real."""
        seeds = ", ".join(map(str, self.seeds))
        each = "; ".join(
            f"seed {s} {100 * d:+.2f} pp (McNemar p = {p:.2g})" for s, d, p in zip(self.seeds, self.differences, self.p_values)
        )
        direction = "lower" if self.difference < 0 else "higher" if self.difference > 0 else "unchanged"
        if self.real:
            judgement = f"a real {'loss' if self.difference < 0 else 'gain'}: the seed-aware interval excludes 0"
        else:
            judgement = "not a real effect: the seed-aware interval includes 0"
        few = ", from two seeds only" if len(self.seeds) == 2 else ""
        return (
            f"{100 * self.difference:+.2f} pp on average over seeds {seeds} ({self.confidence:.0%} interval over seeds "
            f"and sentences [{100 * self.ci_low:+.2f}, {100 * self.ci_high:+.2f}]{few}); {each}; {direction} in "
            f"{self.same_sign} of {len(self.seeds)} seeds: {judgement}"
        )


def seed_effect(
    baseline: dict[int, np.ndarray],
    runs: dict[int, np.ndarray],
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SeedEffect:
    """The effect over seeds of paired outcomes: `baseline[s]` and `runs[s]` are seed s's correct/wrong per
    sentence (the same sentences for every seed and both runs)."""
    seeds = [s for s in baseline if s in runs]
    if not seeds:
        raise ValueError("no seed has both a baseline and a run")
    base = [np.asarray(baseline[s], dtype=bool) for s in seeds]
    run = [np.asarray(runs[s], dtype=bool) for s in seeds]
    difference, low, high = seed_bootstrap_ci(base, run, n_resamples, confidence, seed)
    return SeedEffect(
        seeds=list(seeds),
        differences=[float(r.mean() - b.mean()) for b, r in zip(base, run)],
        p_values=[mcnemar_test(b, r).p_value for b, r in zip(base, run)],
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
    )


@dataclass
class SeedAwareComparison(Comparison):
    """A comparison of runs trained with several seeds (`compare_runs` makes one when `seed_groups` pairs them).

    The inherited tables hold the per-seed rows: every run against its own seed's baseline, with a `seed`
    column (`overall`, `per_language`, `significance`). The across-seed rows:
    - `across_seeds` (index threshold, baseline left out): table, n_seeds, seeds, the mask columns,
      accuracy_baseline and accuracy (means over seeds), accuracy_delta (the mean of the seeds' differences),
      ci_low/ci_high (`seed_bootstrap_ci`), delta_min/delta_max (the seeds' range), same_sign (seeds whose
      difference has the mean's sign), seeds_significant (McNemar p < alpha), f1_macro, f1_macro_delta,
      real (the interval excludes 0), and each seed's McNemar p as `p_mcnemar_s<seed>`.
    - `language_across_seeds` (per threshold and language, largest mean drop first): support, n_seeds,
      accuracy_baseline, accuracy, accuracy_delta (means), ci_low/ci_high, f1_delta, seeds_worse,
      seeds_better, flagged: worse in every seed, a mean drop beyond drop_threshold and an interval below 0.
    """

    seed_comparisons: dict[int, Comparison] = field(default_factory=dict)
    across_seeds: pd.DataFrame = field(default_factory=pd.DataFrame)
    language_across_seeds: pd.DataFrame = field(default_factory=pd.DataFrame)
    effects: dict[Any, SeedEffect] = field(default_factory=dict)
    baseline_threshold: Any = 0
    alpha: float = 0.05
    by_length_across_seeds: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BY_LENGTH_ACROSS_COLUMNS)))

    @property
    def baselines(self) -> dict[int, str]:
        """Each seed's baseline run label."""
        return {s: c.baseline for s, c in self.seed_comparisons.items()}

    @property
    def flagged(self) -> pd.DataFrame:
        """The languages that drop across seeds (not in one seed alone)."""
        return self.language_across_seeds[self.language_across_seeds["flagged"]]

    @property
    def seeds(self) -> list[int]:
        return list(self.seed_comparisons)

    def label(self, threshold: Any) -> str:
        """`threshold_label` of one of the compared thresholds (its share, when it was asked for as one)."""
        shares = self.across_seeds["threshold_share"] if "threshold_share" in self.across_seeds else {}
        return threshold_label(threshold, shares.get(threshold) if threshold in shares else None)

    def summary(self, top: int = 10) -> str:
        across = self.across_seeds
        n = int(self.overall["n_sentences"].iloc[0])
        seeds = ", ".join(map(str, self.seeds))
        lines = [
            f"Across seeds {seeds}: each run against its own seed's baseline (threshold {self.baseline_threshold}); "
            f"{n:,} paired sentences",
            f"{'threshold':>12} {'seeds':>5} {'masked tokens':>16} {'masked occ.':>11} {'accuracy':>9} {'Δ acc (pp)':>10} "
            f"{f'{self.confidence:.0%} CI seeds+sent.':>20} {'seed range (pp)':>16} {'same sign':>9} {'real':>5}  McNemar p per seed",
        ]
        for threshold, row in across.iterrows():
            masked = (
                "-" if pd.isna(row["tokens_masked"]) else f"{int(row['tokens_masked']):,} ({row['vocab_masked_fraction']:.1%})"
            )
            occurrences = "-" if pd.isna(row["occurrences_masked_fraction"]) else f"{row['occurrences_masked_fraction']:.2%}"
            ci = f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
            spread = f"{100 * row['delta_min']:+.2f}..{100 * row['delta_max']:+.2f}"
            p_values = ", ".join(
                f"s{s} {row[f'p_mcnemar_s{s}']:.2g}" for s in self.seeds if pd.notna(row.get(f"p_mcnemar_s{s}", np.nan))
            )
            lines.append(
                f"{self.label(threshold):>12} {int(row['n_seeds']):>5} {masked:>16} {occurrences:>11} {row['accuracy']:>9.2%} "
                f"{100 * row['accuracy_delta']:>+10.2f} {ci:>20} {spread:>16} {f'{row.same_sign}/{row.n_seeds}':>9} "
                f"{'yes' if row['real'] else 'no':>5}  {p_values}"
            )
        flagged = self.flagged
        lines.append("")
        lines.append(
            f"Languages that drop in every seed, by more than {100 * self.drop_threshold:g} point(s) on average, with the "
            f"seed-aware interval below 0: {len(flagged)}"
        )
        for r in flagged.head(top).itertuples():
            lines.append(
                f"  threshold {self.label(r.threshold)}: {r.language:<10} {r.accuracy_baseline:.2%} -> {r.accuracy:.2%} "
                f"({100 * r.accuracy_delta:+.2f} pp, CI [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}], worse in "
                f"{r.seeds_worse} of {r.n_seeds} seeds)"
            )
        for extra in (describe_by_length_across_seeds(self.by_length_across_seeds, self.confidence, self.label), describe_references_of(self)):
            if extra:
                lines.extend(["", extra])
        for s, comparison in self.seed_comparisons.items():
            lines.append("")
            lines.append(f"Seed {s}:")
            lines.append(comparison.summary(top=top))
        for key, path in self.paths.items():
            lines.append(f"{key}: {path}")
        return "\n".join(lines)

    def verdict(self, alpha: float | None = None, languages_named: int = 5) -> str:
        """What the comparison shows over seeds, in words: per threshold, the mask, the mean change with its
        seed-aware interval, each seed's change and McNemar p, and whether the effect is real (the interval
        excludes 0); the languages that drop in every seed; then one sentence naming the seeds."""
        alpha = self.alpha if alpha is None else alpha
        seeds = ", ".join(map(str, self.seeds))
        lines, real = [], []
        for threshold, row in self.across_seeds.iterrows():
            effect = self.effects[threshold]
            masked = ""
            if not pd.isna(row["tokens_masked"]):
                occurrences = (
                    "" if pd.isna(row["occurrences_masked_fraction"])
                    else f", {row['occurrences_masked_fraction']:.2%} of the training tokens"
                )  # fmt: skip
                masked = f" masks {int(row['tokens_masked']):,} tokens ({row['vocab_masked_fraction']:.1%} of the vocabulary{occurrences});"
            lines.append(
                f"threshold {self.label(threshold)}:{masked} accuracy {row['accuracy_baseline']:.2%} -> {row['accuracy']:.2%}, "
                f"{effect.words()}."
            )
            if effect.real:
                real.append(self.label(threshold))
            losers = self.flagged[self.flagged["threshold"] == threshold].head(languages_named)
            if not losers.empty:
                named = ", ".join(
                    f"{r.language} {100 * r.accuracy_baseline:.1f} % -> {100 * r.accuracy:.1f} %" for r in losers.itertuples()
                )
                lines.append(f"  Languages that drop in every seed (interval below 0): {named}.")
        lengths = self.by_length_across_seeds
        if not lengths.empty:
            short = lengths[lengths["length"] != "full"]
            bitten = short[short["real"]]
            if bitten.empty:
                lines.append(
                    "By text length (first 1, 2, 3, 5 words): no threshold changes short texts beyond seed and sentence noise."
                )
            else:
                named = "; ".join(
                    f"threshold {self.label(r.threshold)} at {r.length} word(s) {100 * r.accuracy_delta:+.2f} pp "
                    f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"
                    for r in bitten.itertuples()
                )
                lines.append(f"By text length, effects whose seed-aware interval excludes 0: {named}.")
        pairing = f"each run paired with its own seed's baseline, threshold {self.baseline_threshold}"
        short_real = sorted({self.label(t) for t in lengths[(lengths["length"] != "full") & lengths["real"]]["threshold"]}) if not lengths.empty else []
        shorter = f"; on short texts {len(short_real)} do ({', '.join(short_real)}, above)" if short_real else ""
        if not real:
            lines.append(
                f"Across seeds {seeds} ({pairing}): on full sentences no threshold has a real effect; every seed-aware "
                f"{self.confidence:.0%} interval includes 0{shorter}."
            )
        else:
            lines.append(
                f"Across seeds {seeds} ({pairing}): on full sentences {len(real)} of {len(self.across_seeds)} thresholds "
                f"have a real effect (the seed-aware {self.confidence:.0%} interval excludes 0): {', '.join(real)}{shorter}."
            )
        return "\n".join(lines)

    def _write(self, output_dir: Path, figures: bool, final_dir: Path) -> dict[str, Path]:
        """The per-seed and across-seed tables, the figures over seeds and the summary (see `Comparison._write`)."""
        paths = {}
        tables = (
            ("overall", self.overall, True), ("per_language", self.per_language, False),
            ("significance", self.significance, True), ("across_seeds", self.across_seeds, True),
            ("language_across_seeds", self.language_across_seeds, False),
            ("by_length_across_seeds", self.by_length_across_seeds, False),
        )  # fmt: skip
        for name, table, index in tables:
            path = output_dir / f"{name}.csv"
            with atomic_path(path) as tmp:
                table.to_csv(tmp, index=index, float_format="%.6g")
            paths[name] = path
        if figures:
            paths["threshold_figure"] = plots.seed_threshold_curves(
                self._seed_points(), self.across_seeds, output_dir / "accuracy_vs_threshold.png",
                baseline_threshold=self.baseline_threshold, confidence=self.confidence, label=self.label,
            )  # fmt: skip
            language = self.language_across_seeds.assign(
                run=[f"threshold {self.label(t)}, mean of {n} seeds" for t, n in zip(self.language_across_seeds["threshold"], self.language_across_seeds["n_seeds"])]
            )
            paths["language_figure"] = plots.language_delta_bars(
                language, output_dir / "language_deltas.png", drop_threshold=self.drop_threshold
            )
        self.paths = {key: final_dir / path.name for key, path in paths.items()}
        paths["summary"] = write_text_atomic(output_dir / "summary.txt", f"{self.summary()}\n\n{self.verdict()}\n")
        return paths

    def _seed_points(self) -> pd.DataFrame:
        """threshold, seed, accuracy, accuracy_delta of every run (each seed's baseline at delta 0)."""
        rows = []
        for threshold in self.across_seeds.index:
            effect = self.effects[threshold]
            for s, d in zip(effect.seeds, effect.differences):
                rows.append({"threshold": threshold, "seed": s, "accuracy_delta": d})
        for s in self.seed_comparisons:
            rows.append({"threshold": self.baseline_threshold, "seed": s, "accuracy_delta": 0.0})
        points = pd.DataFrame(rows)
        accuracy = {(t, s): a for t, s, a in zip(self.overall["sweep_threshold"], self.overall["seed"], self.overall["accuracy"])}
        points["accuracy"] = [accuracy[(t, s)] for t, s in zip(points["threshold"], points["seed"])]
        return points


def compare_seeds(
    loaded: list[ComparedRun],
    groups: SeedGroups,
    *,
    drop_threshold: float = 0.01,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> SeedAwareComparison:
    """Compare each seed's runs with that seed's baseline (`compare_runs` per seed), then aggregate over seeds."""
    keys, outcomes = _paired_outcomes(loaded[0], loaded[1:])  # every run on the same sentences, across seeds too
    base_t = groups.baseline_threshold
    options = dict(drop_threshold=drop_threshold, confidence=confidence, n_resamples=n_resamples, seed=seed, alpha=alpha)
    per_seed: dict[int, Comparison] = {}
    for s, group in groups.runs.items():
        ordered = [group[base_t], *(run for t, run in group.items() if t != base_t)]
        if len(ordered) > 1:  # a seed whose masked runs all failed has nothing to compare
            per_seed[s] = compare_runs([r.result for r in ordered], labels=[r.label for r in ordered], verbose=False, **options)
    if not per_seed:
        raise WLDetectError("compare: no seed has a run besides its baseline: nothing to compare")
    for comparison in per_seed.values():
        comparison.show_references = False
    threshold_of = {run.label: t for group in groups.runs.values() for t, run in group.items()}

    def tagged(table: pd.DataFrame, s: int, comparison: Comparison, position: int) -> pd.DataFrame:
        table = table.copy()
        table.insert(position, "seed", s)
        labels = table.index if "run" not in table.columns else table["run"]
        table.insert(position + 1, "sweep_threshold", [threshold_of[str(label)] for label in labels])
        table.insert(position + 2, "baseline", comparison.baseline)
        return table

    overall = pd.concat([tagged(c.overall, s, c, 1) for s, c in per_seed.items()])
    significance = pd.concat([tagged(c.significance, s, c, 0) for s, c in per_seed.items()])
    per_language = pd.concat([tagged(c.per_language, s, c, 1) for s, c in per_seed.items()], ignore_index=True)

    languages = keys["language"].to_numpy()
    f1_delta_of = {s: c.per_language.set_index(["run", "language"])["f1_delta"] for s, c in per_seed.items()}
    language_order = list(dict.fromkeys(next(iter(per_seed.values())).per_language["language"]))
    across_rows, language_rows, effects = [], [], {}
    for t in groups.thresholds[1:]:
        seeds = [s for s in per_seed if t in groups.runs[s]]
        if not seeds:
            continue
        base = {s: outcomes[groups.runs[s][base_t].label] for s in seeds}
        run = {s: outcomes[groups.runs[s][t].label] for s in seeds}
        effect = effects[t] = seed_effect(base, run, n_resamples, confidence, seed)
        rows = [per_seed[s].overall.loc[groups.runs[s][t].label] for s in seeds]
        first = rows[0]
        across_rows.append(
            {
                "threshold": t, "table": first["table"], "n_seeds": len(seeds), "seeds": ", ".join(map(str, seeds)),
                **{column: first[column] for column in _MASK_COLUMNS if column != "threshold"},
                "accuracy_baseline": float(np.mean([base[s].mean() for s in seeds])),
                "accuracy": float(np.mean([run[s].mean() for s in seeds])),
                "accuracy_delta": effect.difference, "ci_low": effect.ci_low, "ci_high": effect.ci_high,
                "delta_min": min(effect.differences), "delta_max": max(effect.differences),
                "same_sign": effect.same_sign, "seeds_significant": int(sum(p < alpha for p in effect.p_values)),
                "f1_macro": float(np.mean([r["f1_macro"] for r in rows])),
                "f1_macro_delta": float(np.mean([r["f1_macro_delta"] for r in rows])),
                "real": effect.real,
                **{f"p_mcnemar_s{s}": p for s, p in zip(seeds, effect.p_values)},
            }
        )  # fmt: skip
        for code in language_order:
            where = languages == code
            language_effect = seed_effect(
                {s: base[s][where] for s in seeds}, {s: run[s][where] for s in seeds}, n_resamples, confidence, seed
            )
            f1_deltas = [float(f1_delta_of[s].at[(groups.runs[s][t].label, code)]) for s in seeds]
            worse = sum(d < 0 for d in language_effect.differences)
            language_rows.append(
                {
                    "threshold": t, "language": code, "support": int(where.sum()), "n_seeds": len(seeds),
                    "accuracy_baseline": float(np.mean([base[s][where].mean() for s in seeds])),
                    "accuracy": float(np.mean([run[s][where].mean() for s in seeds])),
                    "accuracy_delta": language_effect.difference,
                    "ci_low": language_effect.ci_low, "ci_high": language_effect.ci_high,
                    "f1_delta": float(np.mean(f1_deltas)),
                    "seeds_worse": int(worse), "seeds_better": int(sum(d > 0 for d in language_effect.differences)),
                    "flagged": bool(
                        worse == len(seeds) and language_effect.difference < -drop_threshold - 1e-12 and language_effect.ci_high < 0
                    ),
                }
            )  # fmt: skip
    across = pd.DataFrame(across_rows).set_index("threshold")
    length_table = by_length_across_seeds(groups, per_seed, base_t, n_resamples, confidence, seed)
    language_table = pd.DataFrame(language_rows)
    if not language_table.empty:
        rank = {t: i for i, t in enumerate(groups.thresholds)}
        language_table = (
            language_table.assign(_rank=language_table["threshold"].map(rank))
            .sort_values(["_rank", "accuracy_delta", "f1_delta", "language"], kind="stable")
            .drop(columns="_rank")
            .reset_index(drop=True)
        )
    return SeedAwareComparison(
        runs=loaded, overall=overall, per_language=per_language, significance=significance,
        drop_threshold=drop_threshold, confidence=confidence, seed_comparisons=per_seed, across_seeds=across,
        language_across_seeds=language_table, effects=effects, baseline_threshold=base_t, alpha=alpha,
        by_length_across_seeds=length_table,
    )  # fmt: skip


BY_LENGTH_ACROSS_COLUMNS = (
    "threshold", "length", "n", "n_seeds", "accuracy_baseline", "accuracy", "accuracy_delta", "ci_low", "ci_high",
    "delta_min", "delta_max", "same_sign", "real",
)  # fmt: skip


def by_length_across_seeds(
    groups: SeedGroups, per_seed: dict[int, Comparison], base_t: Any, n_resamples: int, confidence: float, seed: int
) -> pd.DataFrame:
    """The masking effect at each text length over seeds: per threshold and length, the mean of the seeds'
    differences (each run against its own seed's baseline, on the same fragments) and the seed-aware interval
    (`seed_effect`). Where masking bites, it bites short texts first; this says whether that holds across
    seeds. Empty when the runs' results have no by-length view."""
    rows = []
    for t in groups.thresholds[1:]:
        seeds = [s for s in per_seed if t in groups.runs[s]]
        paired = {}
        for s in seeds:
            base, run = groups.runs[s][base_t].result, groups.runs[s][t].result
            if base.by_length is None or run.by_length is None:
                return pd.DataFrame(columns=list(BY_LENGTH_ACROSS_COLUMNS))
            paired[s] = paired_by_length(base, run)
        if not paired:
            continue
        for i, (length, _, _) in enumerate(next(iter(paired.values()))):
            effect = seed_effect(
                {s: paired[s][i][1] for s in paired}, {s: paired[s][i][2] for s in paired}, n_resamples, confidence, seed
            )
            rows.append(
                {
                    "threshold": t, "length": length, "n": len(paired[seeds[0]][i][1]), "n_seeds": len(paired),
                    "accuracy_baseline": float(np.mean([paired[s][i][1].mean() for s in paired])),
                    "accuracy": float(np.mean([paired[s][i][2].mean() for s in paired])),
                    "accuracy_delta": effect.difference, "ci_low": effect.ci_low, "ci_high": effect.ci_high,
                    "delta_min": min(effect.differences), "delta_max": max(effect.differences),
                    "same_sign": effect.same_sign, "real": effect.real,
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=list(BY_LENGTH_ACROSS_COLUMNS))


def describe_by_length_across_seeds(table: pd.DataFrame, confidence: float = 0.95, label: Callable[[Any], str] = str) -> str:
    """The across-seed by-length table, one line per threshold and length (named by `label`), for the summary."""
    if table.empty:
        return ""
    lines = [
        "Masking effect by text length across seeds (first K words; CJK/Thai 2K characters), each run against its own "
        "seed's baseline:",
        f"  {'threshold':>10} {'length':>6} {'n':>7} {'acc base':>9} {'acc':>8} {'Δ pp':>7} "
        f"{f'{confidence:.0%} CI seeds+sent.':>20} {'same sign':>9} {'real':>5}",
    ]
    for r in table.itertuples():
        lines.append(
            f"  {label(r.threshold):>10} {r.length:>6} {r.n:>7,} {r.accuracy_baseline:>9.2%} {r.accuracy:>8.2%} "
            f"{100 * r.accuracy_delta:>+7.2f} {f'[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]':>20} "
            f"{f'{r.same_sign}/{r.n_seeds}':>9} {'yes' if r.real else 'no':>5}"
        )
    return "\n".join(lines)


def describe_references_of(comparison: Comparison) -> str:
    """The reference detectors scored on the baseline's sentences (its `<set>_references.json`), as rows
    beside the model, or "" when the baseline was evaluated without references."""
    record = getattr(comparison.runs[0].result, "references", None)
    return describe_references(record) if record else ""

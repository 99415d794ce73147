"""The `wldetect` command: one sub-command per workflow step, each a thin shell around the step's function.

The steps: 1 count tokens (`count-tokens`), 2 create mask (`create-mask`, `visualize-mask`), 3 train, which
also writes the artifacts (`train`; `filter-lookup` masks trained artifacts afterwards), 4 evaluate (`eval`),
5 compare (`compare`); `run` executes a step's notebook (01_count_tokens ... 05_compare, and the analysis
06_weight_analysis), `sweep` runs step 3 per threshold and step 5 on the results, `demo` runs them all.

User errors (`WLDetectError`) print as one line on stderr and exit with status 2, never a traceback.
Each command imports its step's module when it runs: `wldetect detect` needs the core install alone (no
torch, pandas or notebook stack) and starts in the time the detector takes to load.
"""

from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path

import typer

from wldetect.errors import WLDetectError
from wldetect.io import decode_utf8, read_lines, refuse_existing_file, split_lines

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train fast language identifiers from frozen LLM token embeddings; measure what token masking does.",
)

DEMO_CONFIG = Path("params/training/demo.yaml")


@app.callback()
def _commands() -> None:
    """Keeps `wldetect STEP ...` a command group even while it has one command."""


@app.command()
def demo(
    config: Path = typer.Option(DEMO_CONFIG, "--config", help="training parameter file of the embedded default"),
    threshold: str = typer.Option(
        "10", "--threshold", help="threshold of the mask report, the evaluation and the weight analysis (a count or a share like 0.5%)"
    ),
    summary_only: bool = typer.Option(False, "--summary-only", help="only load the model and data and summarise them"),
) -> None:
    """The whole workflow on the embedded default: step 1 count tokens, step 2 create mask, step 3 train for
    thresholds 0, 1% (of the training tokens) and 10 over seeds 0, 1, 2 with step 5's seed-aware comparison and
    the reference detectors, step 4 evaluate on the shipped PUD sentences, and the weight analysis; each an
    executed notebook in runs/."""
    from wldetect.config import load_training_config
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.evalsets import load_evaluation_set
    from wldetect.sources.models import load_model
    from wldetect.steps.masking import parse_threshold

    threshold = parse_threshold(threshold)  # a bad one is one line now, not after the model has loaded
    training_config = load_training_config(config)
    model = load_model(training_config.model)
    print(model.summary())
    data = prepare_training_dataset(training_config.dataset, training_config.model.language_codes)
    print(f"Demo corpus: {len(data):,} examples in {len(data.report.per_language)} languages (step 1 counts its tokens)")
    evaluation_set = load_evaluation_set(training_config.evaluation.dataset, training_config.evaluation.split)
    print(f"Evaluation set: {evaluation_set.describe()}")
    if summary_only:
        return
    from wldetect.workflow import notebooks

    started = time.time()
    steps = notebooks.demo(config, threshold=threshold)
    print(f"\nDemo finished in {time.time() - started:.0f} s. Executed notebooks (open the .html files in a browser):")
    for step, run in steps.items():
        notebook = run.path / f"{run.manifest()['kind']}.html"
        print(f"  {step:<22} {notebook}")


@app.command("count-tokens")
def count_tokens_command(
    training_config: Path = typer.Option(..., "--training-config", help="training parameter file (dataset + model)"),
    output: Path | None = typer.Option(
        None,
        "--output",
        help="counts .npy (default: <output.artifacts_dir>-counts/token_counts.npy, beside the artifacts directory, "
        "not in it); the per-language files and the token ids go next to it",
    ),
    batch_size: int = typer.Option(512, "--batch-size", help="texts per encode_batch call"),
    num_workers: int | None = typer.Option(None, "--num-workers", help="batches tokenised concurrently (threads; default 2)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recount even if counts for these inputs are cached"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing file or another model's directory"),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (Ray Data tasks; same counts)"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address, e.g. auto or ray://head:10001 (default: a local Ray)"),
) -> None:
    """Step 1: count every token id in the training examples (int64, one entry per embedding row)."""
    from wldetect.config import load_training_config
    from wldetect.steps.counting import count_tokens, default_counts_path

    config = load_training_config(training_config)
    output = output or default_counts_path(config)
    refuse_existing_file(output, overwrite, "--output")
    count_tokens(
        config,
        output=output,
        batch_size=batch_size,
        num_workers=num_workers,
        use_cache=not no_cache,
        executor=executor,
        address=address,
    )


@app.command("create-mask")
def create_mask_command(
    token_counts: Path = typer.Option(..., "--token-counts", help="counts .npy from count-tokens"),
    threshold: str = typer.Option(
        ..., "--threshold", help="keep tokens seen at least this many times; or a share of the training tokens to mask, e.g. 0.5%"
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        help="mask .npy (default: token_mask.npy next to the counts; never a trained model's own mask file); "
        "its record (threshold, share, statistics) goes beside it as .json",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing file or another model's directory"),
) -> None:
    """Step 2: the weight mask (bool, True = keep): tokens seen fewer than --threshold times get weight 0.

    `--threshold 0.0025%` masks the rarest tokens that together carry at most that share of the training tokens
    (the seed's threshold 10 carried 0.0025 % on OpenLID-v2); the record names both (`0.0025% -> threshold 1`)."""
    from wldetect.artifacts import MASK_FILE, refuse_model_file
    from wldetect.steps.masking import create_mask

    output = output or token_counts.with_name(MASK_FILE)
    refuse_model_file(output, "--output")  # before "already exists": --overwrite would not make it right
    refuse_existing_file(output, overwrite, "--output")
    create_mask(token_counts, threshold, output)


@app.command("visualize-mask")
def visualize_mask_command(
    token_counts: Path = typer.Option(..., "--token-counts", help="counts .npy from count-tokens"),
    token_mask: Path = typer.Option(..., "--token-mask", help="mask .npy from create-mask"),
    output: Path | None = typer.Option(None, "--output", help="coverage PNG (default: mask_coverage.png next to the mask)"),
    thresholds: str = typer.Option(
        "1,5,10,50,100", "--thresholds", help="comma-separated thresholds for the table: counts or shares like 0.0025%"
    ),
    training_config: Path | None = typer.Option(
        None, "--training-config", help="with it, masked tokens are decoded and broken down by Unicode script"
    ),
) -> None:
    """Step 2's report: CDF of token counts, share of training data masked (< 0.01% check), per-language impact."""
    import pandas as pd

    from wldetect.steps.masking import mask_coverage

    tokenizer = None
    if training_config is not None:
        from wldetect.config import load_training_config
        from wldetect.sources.models import load_tokenizer_file

        tokenizer, _ = load_tokenizer_file(load_training_config(training_config).model.model_specs[0])
    coverage = mask_coverage(
        token_counts,
        token_mask,
        output or token_mask.with_name("mask_coverage.png"),
        thresholds=[t for t in thresholds.split(",") if t.strip()],
        tokenizer=tokenizer,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(coverage.statistics.report())
        print("\nThreshold table\n" + coverage.threshold_table.to_string(index=False))
        if coverage.language_impact is not None:
            impact = coverage.language_impact
            print(f"\nPer-language impact (flag rule: {impact.attrs['flag_rule']}); most affected first")
            print(impact.head(max(10, int(impact["flagged"].sum()))).to_string(index=False))
        if coverage.script_breakdown is not None:
            print("\nMasked vs kept tokens by Unicode script\n" + coverage.script_breakdown.to_string(index=False))
            print("\nSample of masked tokens that occur in the training data\n" + coverage.masked_sample.to_string(index=False))
    print(f"\nSaved mask coverage figure to {coverage.figure_path}")


@app.command()
def train(
    config: Path = typer.Option(..., "--config", help="training parameter file, e.g. params/training/demo.yaml"),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="artifacts directory (default: output.artifacts_dir)"),
    token_mask: Path | None = typer.Option(None, "--token-mask", help="mask .npy (bool, True = keep): masked weights start at 0"),
    threshold: str | None = typer.Option(
        None, "--threshold",
        help="build the mask from the counted training tokens: keep tokens seen >= N times, or mask a share like 0.5%",
    ),
    token_ids: Path | None = typer.Option(
        None, "--token-ids",
        help="step 1's token ids: its run directory, counts .npy or token-ids directory (default: step 1 runs first, as count-tokens does, cached)",
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint of an interrupted run"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing file or another model's directory"),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="run step 4 on the configured set afterwards"),
) -> None:
    """Step 3: train (optionally with a token mask) and write the artifacts; then the FP8 tables' quantisation
    report and step 4's evaluation on the configured set, each as its own step.

    Without --token-ids, step 1 runs first as its own step, as `count-tokens` does (reused from the cache when
    these inputs were counted before): the seed's `wldetect train --config X` works on its own, and training
    itself only ever reads step 1's files. The mask is `masking.resolve_mask`'s decision, as everywhere."""
    from wldetect.config import load_training_config
    from wldetect.steps.evaluation import evaluate_configured
    from wldetect.steps.posthoc import quantization_report
    from wldetect.steps.training import train as train_step
    from wldetect.steps.training import training_output

    training_config = load_training_config(config)
    if token_ids is None:
        from wldetect.steps.counting import count_tokens
        from wldetect.steps.masking import parse_threshold

        threshold = parse_threshold(threshold) if threshold is not None else None  # a bad one: one line, not after counting

        training_output(training_config, output_dir, overwrite)  # a run that could not commit is refused before counting
        print("Step 1: count the training tokens (no --token-ids given; reused from the cache when counted before)")
        num_workers = training_config.training.num_workers or None
        token_ids = count_tokens(training_config, num_workers=num_workers).token_ids_path
        print()
    result = train_step(
        training_config, output_dir=output_dir, token_mask=token_mask, threshold=threshold, token_ids=token_ids,
        resume=resume, overwrite=overwrite,
    )  # fmt: skip
    if not result.completed:
        return
    print("\nThe FP8 tables against fp32")
    print(quantization_report(result.artifacts_dir, training_config).table().to_string())
    if evaluate:
        print("\nStep 4: evaluate")
        evaluate_configured(result.artifacts_dir, training_config)


@app.command("filter-lookup")
def filter_lookup_command(
    model_path: Path = typer.Option(..., "--model-path", help="trained artifacts directory"),
    token_counts: Path = typer.Option(..., "--token-counts", help="counts .npy from count-tokens"),
    threshold: str = typer.Option(..., "--threshold", help="zero the weights of tokens seen fewer times (or a share like 0.5%)"),
    output_dir: Path = typer.Option(..., "--output-dir", help="new artifacts directory (the source is left as it is)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing file or another model's directory"),
) -> None:
    """Post-hoc masking of step 3's artifacts: zero rare tokens' weights without retraining (new artifacts dir)."""
    from wldetect.steps.posthoc import filter_lookup

    result = filter_lookup(model_path, token_counts, threshold, output_dir, overwrite=overwrite)
    print(f"Filtered artifacts saved to: {result.output_dir}")


@app.command()
def export(
    model_path: Path = typer.Option(..., "--model-path", help="trained artifacts directory"),
    export_format: str = typer.Option(..., "--format", help="wordllamadetect: the layout of the published wldetect 0.1.2"),
    output: Path = typer.Option(..., "--output", help="directory to write (model_config.yaml, exp table, tokenizer.json)"),
    sparse_threshold: float | None = typer.Option(
        None, "--sparse-threshold", help="store only exp(logit) >= T, as sparse COO (default: dense)"
    ),
    table: str = typer.Option("fp32", "--table", help="which lookup table to export: fp32, e3m4 or e4m3fn"),
    tokenizer_repo: str | None = typer.Option(
        None, "--tokenizer-repo", help="hub repo the published runtime loads the tokenizer from (default: the model's)"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the export's files in a non-empty --output"),
) -> None:
    """Write a trained model for users of the published WordLlamaDetect runtime (`WLDetect("OUT")`)."""
    from wldetect.artifacts import EXPORT_FORMATS, export_wordllamadetect

    if export_format not in EXPORT_FORMATS:
        raise WLDetectError(f"--format {export_format!r}: expected {', '.join(EXPORT_FORMATS)}")
    result = export_wordllamadetect(
        model_path,
        output,
        sparse_threshold=sparse_threshold,
        table=table,
        tokenizer_repo=tokenizer_repo,
        overwrite=overwrite,
    )
    kept = f"{result['stored_entries']:,} of {result['entries']:,} entries" if sparse_threshold is not None else "dense"
    print(
        f"Exported {model_path} ({table} table) to {output}: lookup_table_exp.safetensors "
        f"{result['size_bytes'] / 1024**2:.1f} MB ({kept}), tokenizer repo {result['tokenizer_repo']}"
    )


@app.command()
def detect(
    model_path: Path = typer.Option(..., "--model-path", help="artifacts directory"),
    text: str | None = typer.Option(None, "--text", help="one text to identify"),
    file: Path | None = typer.Option(None, "--file", help="one text per line; '-' reads stdin"),
    table: str = typer.Option("e3m4", "--table", help="lookup table: e3m4, e4m3fn or fp32"),
    top_k: int | None = typer.Option(None, "--top-k", help="print the k best languages of each text"),
    tokenizer: Path | None = typer.Option(
        None, "--tokenizer", help="tokenizer.json to use (a published WordLlamaDetect directory names a hub repo instead)"
    ),
) -> None:
    """Identify languages with NumPy only: one result line (language<TAB>confidence) per input line.

    A line without language evidence (blank, or only symbols, digits, punctuation, emoji or unknown tokens)
    prints `und<TAB>0.0000`; with --top-k the pairs are separated by tabs.
    """
    from wldetect.detect import WLDetect

    if (text is None) == (file is None):
        raise WLDetectError("give exactly one of --text or --file")
    if text is not None:
        lines = [text]
    elif str(file) == "-":
        lines = split_lines(decode_utf8(sys.stdin.buffer.read(), "standard input"))
    elif not file.is_file():
        raise WLDetectError(f"--file {file}: file not found")
    else:
        lines = read_lines(file, "--file")
    detector = WLDetect.load(model_path, table=table, tokenizer=tokenizer)
    out = sys.stdout
    for start in range(0, len(lines), 8192):
        for result in detector.predict(lines[start : start + 8192], top_k=top_k):
            if result is None:
                out.write("und\t0.0000\n")
            elif top_k is None:
                out.write(f"{result[0]}\t{result[1]:.4f}\n")
            else:
                out.write("\t".join(f"{code}\t{p:.4f}" for code, p in result) + "\n")


@app.command("eval")
def eval_command(
    model_path: Path = typer.Option(..., "--model-path", help="artifacts directory (or a run directory with artifacts/)"),
    split: str = typer.Option("dev", "--split", help="dev or devtest"),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="pud, demo (the shipped dev set), flores_plus, a hub id, a FLORES+/FLORES-200 directory, a dir of <code>.txt "
        "(default: the set the model was trained with, else demo)",
    ),
    table: str = typer.Option("e3m4", "--table", help="lookup table: e3m4, e4m3fn, fp32, or all (side by side)"),
    output: Path | None = typer.Option(None, "--output", help="results JSON path (default: in the model directory)"),
    references: str | None = typer.Option(
        None,
        "--references",
        help="reference detectors scored on the same sentences, e.g. wordllamadetect,fasttext,py3langid (or all): "
        "<set>_references.json, open and closed set, by length, texts/s",
    ),
) -> None:
    """Step 4: evaluate a trained model; save <set>_results.json (pud, devset, flores_dev, ...), predictions, accuracy
    by length (<set>_by_length.csv) and a confusion heatmap."""
    from wldetect.steps.evaluation import evaluate, evaluate_tables

    if table == "all":
        if output is not None:
            raise WLDetectError("--output names one results file; with --table all each table writes its own")
        if references:
            raise WLDetectError("--references scores the references beside one table; give --table e3m4 (or another)")
        evaluate_tables(model_path, dataset=dataset, split=split)
    else:
        evaluate(model_path, dataset=dataset, split=split, table=table, output=output, references=references)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="artifacts dirs, run dirs or *_results.json files; the first is the baseline"),
    results: str | None = typer.Option(
        None, "--results", help="which evaluation to compare: pud, devset, flores_dev, ... (default: each run's only one)"
    ),
    output: Path | None = typer.Option(None, "--output", help="directory for the CSV tables, summary and figures"),
    flag_drop: float = typer.Option(1.0, "--flag-drop", help="flag languages whose accuracy drops more (points)"),
    resamples: int = typer.Option(10_000, "--resamples", help="bootstrap resamples"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
) -> None:
    """Step 5: compare runs with the baseline: metric deltas, McNemar p, bootstrap CI, per-language drops."""
    from wldetect.steps.comparison import compare_runs

    compare_runs(runs, results=results, output_dir=output, drop_threshold=flag_drop / 100, n_resamples=resamples, seed=seed)


def _parameter_words(ctx: typer.Context) -> list[str]:
    """The NAME VALUE words of the `-p NAME VALUE` pairs typer leaves in `ctx.args` (papermill's spelling,
    which click cannot declare: an option taking two words any number of times)."""
    extra = list(ctx.args)
    pairs: list[str] = []
    while extra:
        flag = extra.pop(0)
        if flag.startswith("-") and flag not in ("-p", "--parameters"):  # a mistyped option, not a parameter
            options = [name for param in ctx.command.params for name in param.opts if name.startswith("--")]
            close = difflib.get_close_matches(flag.split("=")[0], options, n=1)
            raise WLDetectError(f"no such option: {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
        if flag not in ("-p", "--parameters") or len(extra) < 2:
            raise WLDetectError(f"unexpected argument {flag!r}: use -p NAME VALUE")
        pairs += [extra.pop(0), extra.pop(0)]
    return pairs


def _parse_parameters(pairs: list[str]) -> dict:
    """`-p NAME VALUE` pairs as papermill reads them: VALUE is parsed as YAML (10 -> int, [1,2] -> list)."""
    from wldetect.config import parse_yaml

    if len(pairs) % 2:
        raise WLDetectError(f"-p takes NAME VALUE pairs, got an odd number of words: {' '.join(pairs)}")
    return {pairs[i]: parse_yaml(pairs[i + 1], f"-p {pairs[i]}") for i in range(0, len(pairs), 2)}


@app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def run_command(
    ctx: typer.Context,
    notebook: str = typer.Argument(..., help="step notebook: 01_count_tokens ... 05_compare (steps 1-5) or 06_weight_analysis; or just its number (03)"),
    parameters_file: Path | None = typer.Option(None, "-f", "--parameters-file", help="YAML file of notebook parameters"),
    name: str | None = typer.Option(None, "--name", help="run name (part of the run id)"),
    seeds: str | None = typer.Option(
        None, "--seeds", help="03_train: one run per training seed, e.g. 0,1,2 (the notebook's -p seed for each)"
    ),
) -> None:
    """Execute a step notebook with papermill straight into a new run record: `wldetect run 03_train -p threshold 10`."""
    from wldetect.config import read_yaml_mapping
    from wldetect.workflow import notebooks

    parameters = {}
    if parameters_file is not None:
        parameters.update(read_yaml_mapping(parameters_file, "parameters file"))
    parameters.update(_parse_parameters(_parameter_words(ctx)))
    seed_list = _parse_seeds(seeds)
    if seed_list is not None and parameters.get("seed") is not None:
        raise WLDetectError("--seeds and -p seed both set the training seed: give one")
    for seed in seed_list or [None]:  # every parameter set is checked before the first run record exists
        notebooks.check_parameters(notebook, {**parameters, **({"seed": seed} if seed is not None else {})})
    if seed_list is not None:
        notebooks.check_seeds(seed_list, parameters.get("overrides") if isinstance(parameters.get("overrides"), dict) else None)
    for seed in seed_list or [None]:
        run = notebooks.run_notebook(notebook, {**parameters, **({"seed": seed} if seed is not None else {})}, run_name=name)
        print(f"Run {run.run_id}: {run.manifest()['status']}")
        print(f"  notebook: {run.path / notebooks.notebook_path(notebook).name}")
        print(f"  html:     {run.path / notebooks.notebook_path(notebook).with_suffix('.html').name}")


@app.command("runs")
def runs_command(
    all_columns: bool = typer.Option(False, "--all", help="show every column"),
    lineage: str | None = typer.Option(None, "--lineage", help="a run id or directory: the runs and files it consumed"),
) -> None:
    """List past runs: id, step, status, threshold and key metrics; or one run's lineage."""
    from wldetect.workflow.runs import lineage_text, list_runs, reap_interrupted, runs_dir

    if lineage is not None:
        print(lineage_text(lineage))
        return
    if runs_dir().is_dir():
        reap_interrupted()  # runs whose processes were killed: marked interrupted, their leftovers removed
    table = list_runs()
    if not table.empty and (table["status"] == "interrupted").any():
        # A run whose last process ended between the reaping and the listing is listed as interrupted: it is
        # marked too (its processes, dead when listed, are still dead), so what is listed is what is recorded.
        reap_interrupted()
    if table.empty:
        print(f"No runs under {runs_dir()}")
        return
    if not all_columns:
        table = table.drop(columns=["config", "duration_s"])
    import pandas as pd

    def cell(value):
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else value

    print(table.astype(object).map(cell).to_string(index=False))


def _sweep_overrides(parameters: dict) -> dict | None:
    """The `-p overrides MAPPING` of `wldetect sweep`. Of 03_train's parameters it is the one a sweep passes on
    as given (to step 1 too, so the counts match the training runs' data); config, threshold and name are the
    sweep's own options and the rest (count_run, token_mask) are what the sweep wires between its runs."""
    for key in parameters:
        if key != "overrides":
            raise WLDetectError(
                f"-p {key}: a sweep takes only -p overrides, the dotted config keys given to step 1 and every "
                "training run (e.g. -p overrides '{training.seed: 1}'); --config, --thresholds and --name set the rest"
            )
    overrides = parameters.get("overrides")
    if overrides is not None and not isinstance(overrides, dict):
        raise WLDetectError(f"-p overrides {overrides!r}: expected a mapping of dotted config keys like {{training.seed: 1}}")
    return overrides or None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", help="training parameter file"),
    thresholds: str = typer.Option(
        ..., "--thresholds",
        help="comma-separated thresholds, counts or shares of the training tokens (0,10,0.0025%,1%); the first is the baseline (0 = no mask)",
    ),
    jobs: int = typer.Option(1, "--jobs", help="training runs executed in parallel"),
    name: str | None = typer.Option(None, "--name", help="sweep name (default: sweep-<config>)"),
    executor: str = typer.Option("local", "--executor", help="local (kernels here, one GPU each) or ray (one Ray task per run)"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address, e.g. auto or ray://head:10001 (default: a local Ray)"),
    runs_per_gpu: int = typer.Option(1, "--runs-per-gpu", help="local executor: concurrent runs allowed on one GPU"),
    seeds: str | None = typer.Option(
        None, "--seeds", help="comma-separated training seeds, e.g. 0,1,2: every threshold is trained with each (default: the config's)"
    ),
) -> None:
    """Step 3 once per threshold and seed (one shared token count), then step 5: compare all runs in one report.

    `--seeds 0,1,2` trains every threshold with each seed and pairs each seed's runs with that seed's baseline;
    the report's verdict then rests on an interval that includes seed-to-seed variation. `-p overrides
    '{"training.learning_rate": 0.01}'` gives step 1 and every training run these config overrides (a YAML
    mapping of dotted keys, as for `wldetect run`)."""
    from wldetect.workflow import notebooks

    overrides = _sweep_overrides(_parse_parameters(_parameter_words(ctx)))
    from wldetect.steps.masking import parse_threshold

    try:
        values = [parse_threshold(t) for t in thresholds.split(",") if t.strip()]
    except WLDetectError as err:
        raise WLDetectError(
            f"--thresholds {thresholds!r}: expected comma-separated integers or shares of the training tokens like "
            f"0,10,0.0025%,1% ({err})"
        ) from None
    report = notebooks.sweep(
        config, values, jobs=jobs, name=name, overrides=overrides, executor=executor, address=address, runs_per_gpu=runs_per_gpu,
        seeds=_parse_seeds(seeds),
    )  # fmt: skip
    print(f"Sweep report: {report.path / '05_compare.html'}")


def _parse_seeds(seeds: str | None) -> list[int] | None:
    """`--seeds 0,1,2` as a list of whole numbers >= 0 (None when not given)."""
    if seeds is None:
        return None
    try:
        values = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise WLDetectError(f"--seeds {seeds!r}: expected comma-separated whole numbers like 0,1,2") from None
    if not values or any(s < 0 for s in values):
        raise WLDetectError(f"--seeds {seeds!r}: expected comma-separated whole numbers >= 0 like 0,1,2")
    return values


def _fail(message: str, status: int = 2) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)  # always one line
    sys.exit(status)


def main() -> None:
    """Run the CLI; every user error is one line on stderr and exit status 2, never a traceback or a box.

    Typer's usage errors (a wrong option type, a missing option) are printed by their message alone.
    `OSError` and `UnicodeDecodeError` on a user's path are a safety net: the commands check their inputs
    and outputs where they read and write them, and this only catches what slipped through.
    """
    try:  # typer >= 0.29 vendors click as typer._click; older versions use click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover
        from click import exceptions as click_errors

    try:
        status = app(standalone_mode=False)
    except WLDetectError as err:
        _fail(str(err))
    except click_errors.NoArgsIsHelpError as err:  # bare `wldetect`: the help text, as before
        print(err.ctx.get_help() if err.ctx else "", file=sys.stderr)
        sys.exit(2)
    except click_errors.UsageError as err:
        hint = f" (see: {err.ctx.command_path} --help)" if err.ctx is not None else ""
        _fail(f"{err.format_message()}{hint}")
    except click_errors.ClickException as err:
        _fail(err.format_message())
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except UnicodeDecodeError as err:
        _fail(f"input is not UTF-8 text (invalid byte at offset {err.start})")
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        _fail(f"{where}{err.strerror or err}")
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()

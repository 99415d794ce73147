"""The notebook workflow: clean committed notebooks, papermill execution into run records, sweeps, failures.

The slow tests (`-m slow`) share one execution of the whole workflow (the module fixture `executed`)."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import evaluate_on_text_directory, module_tiny_project

from wldetect.errors import WLDetectError
from wldetect.workflow import notebooks
from wldetect.workflow.runs import list_runs, open_run

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FILES = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_all_six_step_notebooks_exist():
    assert [p.stem for p in NOTEBOOK_FILES] == notebooks.NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebooks_are_committed_clean_with_one_parameters_cell(path):
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code_cells), "stored outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in notebook.cells) == 1
    assert notebook.metadata["kernelspec"]["name"] == notebooks.KERNEL
    assert any(c.cell_type == "markdown" for c in notebook.cells)


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebooks_save_figures_atomically(path):
    """A figure goes into the run record through `plots.save_figure` (a temporary name, then a rename), so a
    kernel killed mid-write leaves no truncated PNG that looks complete."""
    code = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code")
    assert ".savefig(" not in code


def test_config_is_a_parameter_of_every_step_that_reads_one(monkeypatch):
    """DESIGN: `config` on every step. Steps 1 to 4 take it (04: the evaluation set of its `evaluation`
    section); 05 and 06 read finished runs' files, which name their config, and `-p config` says so."""
    monkeypatch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
    for step in ("01_count_tokens", "02_create_mask", "03_train", "04_evaluate"):
        notebooks.check_parameters(step, {"config": "params/training/demo.yaml"})
    with pytest.raises(WLDetectError, match="^-p split 5: expected a string$"):  # None by default, a string when given
        notebooks.check_parameters("04_evaluate", {"split": 5})
    for step, reason in [("05_compare", "-p runs_to_compare"), ("06_weight_analysis", "-p model_path")]:
        with pytest.raises(WLDetectError, match=rf"^-p config: {step} takes no config: .*{reason}") as refused:
            notebooks.check_parameters(step, {"config": "params/training/demo.yaml"})
        assert "\n" not in str(refused.value)


def test_the_notebooks_kernel_resolves_to_this_environment():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(notebooks.KERNEL)
    # jupyter_client runs a spec whose argv starts with "python" with its own interpreter: the .venv's.
    assert spec.argv[0] in ("python", "python3", sys.executable)
    assert spec.language == "python"


slow = pytest.mark.slow


def _wldetect(*args: str, env_runs: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "WLDETECT_RUNS_DIR": str(env_runs), "WLDETECT_PROJECT_ROOT": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wldetect.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def _run_of(runs_dir: Path, **fields):
    """The one run under `runs_dir` whose manifest has these field values."""
    found = [open_run(p.parent) for p in sorted(runs_dir.glob("*/manifest.json"))]
    found = [r for r in found if all(r.manifest().get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, [r.run_id for r in found])
    return found[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The whole workflow executed ONCE on the tiny model, into one runs directory that every slow test of this
    module reads: step 1 (in-process), step 2 through `wldetect run` (CLI), step 3 twice and step 5 as a sweep,
    step 4 and the weight analysis, step 3 through raw papermill, and a step 2 that fails (threshold -1).
    Executions that do not depend on each other run two or three at a time (kernels start in parallel)."""
    root = tmp_path_factory.mktemp("notebook-workflow")
    with module_tiny_project(root) as (config_path, _, patch):
        evalset = evaluate_on_text_directory(root, config_path)
        runs_dir = root / "runs"
        patch.setenv("WLDETECT_RUNS_DIR", str(runs_dir))
        patch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
        config = str(config_path)

        counted = notebooks.run_notebook("01_count_tokens", {"config": config})  # first: the others reuse its cached count

        params = root / "p.yaml"
        params.write_text(yaml.safe_dump({"config": config}))
        out = root / "elsewhere" / "trained.ipynb"
        out.parent.mkdir()
        raw = subprocess.Popen(
            [sys.executable, "-m", "papermill", "notebooks/03_train.ipynb", str(out),
             "-p", "threshold", "2", "-p", "config", config, "--no-progress-bar"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        with ThreadPoolExecutor(max_workers=2) as pool:
            cli = pool.submit(_wldetect, "run", "02", "-f", str(params), "-p", "threshold", "3", env_runs=runs_dir)
            failing = pool.submit(notebooks.run_notebook, "02_create_mask", {"config": config, "threshold": -1})
            raw_output = raw.communicate()[0]
            cli = cli.result()
            failure = failing.exception()

        mask_run = _run_of(runs_dir, kind="02_create_mask", status="completed")
        report = notebooks.sweep(  # trains from step 1's token ids and, at threshold 3, from step 2's mask file
            config, [0, 3], name="tiny-sweep", jobs=2, count_run=counted.path, masks={3: mask_run.path / "token_mask.npy"}
        )
        baseline, trained = (open_run(p) for p in report.manifest()["parameters"]["runs"])

        with ThreadPoolExecutor(max_workers=2) as pool:
            evaluated = pool.submit(
                notebooks.run_notebook, "04_evaluate",
                {"model_path": str(trained.artifacts_dir), "config": config, "compare_with": str(baseline.artifacts_dir),
                 "references": "fasttext,py3langid"},
            )  # fmt: skip
            weights = pool.submit(
                notebooks.run_notebook, "06_weight_analysis",
                {"model_path": str(trained.artifacts_dir), "baseline_path": str(baseline.artifacts_dir)},
            )  # fmt: skip
            evaluated, weights = evaluated.result(), weights.result()
        yield {
            "runs": runs_dir, "root": root, "config": config, "evalset": evalset,
            "01_count_tokens": counted, "02_create_mask": mask_run, "cli": cli, "failure": failure, "raw": (raw.returncode, raw_output, out),
            "baseline": baseline, "trained": trained, "05_compare": report, "04_evaluate": evaluated,
            "06_weight_analysis": weights,
        }  # fmt: skip


def _assert_clean_execution(run, notebook: str):
    executed = nbformat.read(str(run.path / f"{notebook}.ipynb"), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert (run.path / f"{notebook}.html").stat().st_size > 10_000
    manifest = run.manifest()
    assert manifest["status"] == "completed" and manifest["git"]["commit"] is not None
    assert manifest["notebooks"][0]["html"].endswith(f"{notebook}.html")
    return executed


def _images(executed) -> int:
    return sum("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)


def _printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@slow
def test_step_1_counts_into_a_complete_run_record(executed):
    counted = executed["01_count_tokens"]
    notebook = _assert_clean_execution(counted, "01_count_tokens")
    assert (counted.path / "token_counts.npy").is_file()
    assert set(counted.manifest()["inputs"]) >= {"training_data", "embeddings", "token_counts"}
    assert counted.manifest()["metrics"]["total_tokens"] > 0
    (setup,) = [c for c in notebook.cells if c.cell_type == "code" and "notebook_run(" in c.source]
    assert _printed(setup) == f"Run record: {counted.path}\n"


@slow
def test_step_2_runs_from_the_cli_with_the_seeds_report_inline(executed):
    done = executed["cli"]
    assert done.returncode == 0, done.stderr
    masked = _run_of(executed["runs"], kind="02_create_mask", status="completed")
    assert masked.run_id.endswith("-t3") and masked.manifest()["parameters"]["threshold"] == 3
    notebook = _assert_clean_execution(masked, "02_create_mask")
    assert _images(notebook) >= 1 and (masked.path / "mask_coverage.png").is_file()
    printed = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert "Tokens masked" in printed and "Validation: masked tokens are" in printed  # the seed's report, inline
    assert set(masked.manifest()["inputs"]) >= {"training_data", "embeddings", "token_counts", "token_mask"}
    listed = _wldetect("runs", env_runs=executed["runs"])
    assert masked.run_id in listed.stdout and "02_create_mask" in listed.stdout and "completed" in listed.stdout
    # the kernel's own output (ipykernel's log) is in the run record, not on the console of `wldetect run`
    assert (masked.path / "kernel.log").is_file() and "IPKernelApp" not in done.stderr


@slow
def test_step_3_trains_writes_artifacts_and_evaluation_named_after_the_set(executed):
    baseline, trained = executed["baseline"], executed["trained"]
    for run in (baseline, trained):
        notebook = _assert_clean_execution(run, "03_train")
        assert _images(notebook) >= 2  # training curves and confusion heatmap
        assert (run.path / "training_curves.png").read_bytes().startswith(b"\x89PNG")
        assert not list(run.path.glob("*.tmp*"))  # save_figure's temporary name is gone
        assert (run.artifacts_dir / "lookup_table_fp8_e3m4.safetensors").is_file()
        assert 0.0 <= run.manifest()["metrics"]["accuracy"] <= 1.0
        assert sorted(p.name for p in run.artifacts_dir.glob("*_results.json")) == ["evalset_results.json"]
    assert [r.manifest()["threshold"] for r in (baseline, trained)] == [0, 3]
    assert trained.run_id.endswith("-t3") and (trained.artifacts_dir / "token_mask.npy").is_file()
    assert trained.manifest()["metrics"]["tokens_masked"] > 0 and baseline.manifest()["metrics"]["tokens_masked"] == 0


@slow
def test_step_3_reads_step_1s_token_ids_and_step_2s_mask_file_and_its_manifest_says_so(executed):
    import numpy as np
    from safetensors.numpy import load_file

    from wldetect.workflow.runs import input_hash, lineage

    counted, mask_run, trained = executed["01_count_tokens"], executed["02_create_mask"], executed["trained"]
    inputs = trained.manifest()["inputs"]
    mask_file = mask_run.path / "token_mask.npy"
    assert inputs["token_mask"]["path"] == str(mask_file) and inputs["token_mask"]["run"] == mask_run.run_id
    assert inputs["token_mask"]["sha256"] == input_hash(mask_file)
    assert inputs["token_ids"]["run"] == counted.run_id and inputs["token_counts"]["run"] == counted.run_id
    assert not (trained.path / "token_counts.npy").exists()  # nothing counted again: step 1's files are read
    assert inputs["token_ids"]["sha256"] == input_hash(counted.path / "token_counts_token_ids")
    # the trained weights: zero exactly where the mask file masks a token that never occurs in training (no
    # gradient; in the tiny corpus every masked token is one of those), and nowhere else
    mask = np.load(mask_file)
    counts = np.load(counted.path / "token_counts.npy")
    weights = load_file(str(trained.artifacts_dir / "projection.safetensors"))["token_weights"].reshape(-1)
    assert (~mask).sum() > 0 and np.all(weights[mask] != 0)
    np.testing.assert_array_equal(weights == 0, ~mask & (counts == 0))
    assert json.loads((trained.artifacts_dir / "mask_stats.json").read_text())["source"] == str(mask_file)
    # a reader follows the comparison back to step 1 through the manifests alone
    walked = {run_id for _, run_id, _ in lineage(executed["05_compare"].path)}
    assert {trained.run_id, executed["baseline"].run_id, mask_run.run_id, counted.run_id} <= walked


@slow
def test_step_5_the_sweeps_report_compares_its_runs(executed):
    report = executed["05_compare"]
    assert _images(_assert_clean_execution(report, "05_compare")) >= 2
    overall = (report.path / "overall.csv").read_text()
    assert overall.count("\n") == 3  # header + two runs
    inputs = report.manifest()["inputs"]  # keyed by the training run that wrote each results file
    compared = [executed["baseline"].run_id, executed["trained"].run_id]
    assert {name: entry["run"] for name, entry in inputs.items()} == {run_id: run_id for run_id in compared}


@slow
def test_step_4_evaluates_each_table_against_another_model(executed):
    evaluated = executed["04_evaluate"]
    assert _images(_assert_clean_execution(evaluated, "04_evaluate")) >= 1
    names = {p.name for p in evaluated.path.glob("*_results.json")}
    assert names == {"evalset_results.json", "evalset_fp32_results.json", "evalset_e4m3fn_results.json"}
    assert (evaluated.path / "this_model" / "evalset_results.json").is_file()
    references = json.loads((evaluated.path / "evalset_references.json").read_text())["references"]
    assert set(references) == {"fasttext", "py3langid"} and (evaluated.path / "evalset_by_length.csv").is_file()
    assert 0.0 <= evaluated.manifest()["metrics"]["fasttext_closed_accuracy"] <= 1.0
    assert 0.0 <= evaluated.manifest()["metrics"]["accuracy"] <= 1.0


@slow
def test_the_weight_analysis_executes(executed):
    weights = executed["06_weight_analysis"]
    assert _images(_assert_clean_execution(weights, "06_weight_analysis")) >= 1
    assert (weights.path / "token_weights.png").read_bytes().startswith(b"\x89PNG")
    assert "masked_tokens_changed" in weights.manifest()["metrics"]


@slow
@pytest.mark.parametrize("step", ["01_count_tokens", "02_create_mask", "03_train", "04_evaluate", "05_compare", "06_weight_analysis"])
def test_every_report_ends_with_its_verdict_in_words_then_one_closing_line(executed, step):
    if step == "02_create_mask":
        run = _run_of(executed["runs"], kind=step, status="completed")
    else:
        run = executed["trained"] if step == "03_train" else executed[step]
    notebook = nbformat.read(str(run.path / f"{step}.ipynb"), as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert _printed(code[-1]).endswith(f"Run {run.run_id} completed: {run.path}\n")
    verdict = _printed(code[-2]).strip()
    assert len(verdict.split()) >= 8 and not verdict.startswith(("{", "Run ")), verdict  # sentences, not a dict
    headings = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert headings[0].startswith("# Step " if step != "06_weight_analysis" else "# Analysis")


@slow
def test_every_execution_is_listed_and_the_failed_one_says_so(executed):
    table = list_runs(executed["runs"])
    assert len(table) == 9 and sorted(table["status"].value_counts().items()) == [("completed", 8), ("failed", 1)]


@slow
def test_a_failing_step_is_recorded_as_failed_with_the_error_visible(executed):
    assert isinstance(executed["failure"], WLDetectError) and "notebook 02_create_mask failed" in str(executed["failure"])
    run = _run_of(executed["runs"], kind="02_create_mask", status="failed")
    assert "threshold" in run.manifest()["error"]
    notebook = nbformat.read(str(run.path / "02_create_mask.ipynb"), as_version=4)
    assert any(o.output_type == "error" for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert (run.path / "02_create_mask.html").is_file()


@slow
def test_raw_papermill_writes_its_own_run_record_and_remembers_out(executed):
    returncode, output, out = executed["raw"]
    assert returncode == 0, output
    run = _run_of(executed["runs"], papermill_output=str(out))
    manifest = run.manifest()
    assert manifest["status"] == "completed" and manifest["threshold"] == 2 and manifest["kind"] == "03_train"
    assert (run.path / "artifacts" / "projection.safetensors").is_file()


@pytest.fixture
def tiny_workflow(tmp_path, monkeypatch):
    """An empty runs directory for the command-line errors, which must leave no run behind."""
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
    return {"runs": tmp_path / "runs"}


DEMO_SWEEP = ["sweep", "--config", "params/training/demo.yaml", "--thresholds", "0,5"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "07_nothing"], "unknown notebook '07_nothing'"),
        (["run", "02", "-p", "threshold"], "unexpected argument '-p': use -p NAME VALUE"),
        (["run", "02", "-f", "absent.yaml"], "absent.yaml: parameters file not found"),
        (["sweep", "--config", "params/training/demo.yaml", "--thresholds", "0,ten"], "expected comma-separated integers"),
        ([*DEMO_SWEEP, "-p", "epochs", "2"], "-p epochs: a sweep takes only -p overrides"),
        ([*DEMO_SWEEP, "-p", "overrides", "5"], "-p overrides 5: expected a mapping of dotted config keys"),
        ([*DEMO_SWEEP, "-p", "overrides", "{training.sead: 1}"], "training.sead: unknown key"),
        ([*DEMO_SWEEP, "-p"], "unexpected argument '-p'"),
        ([*DEMO_SWEEP, "--job", "2"], "no such option: --job (did you mean --jobs?)"),
        (["run", "02", "--nmae", "x"], "no such option: --nmae (did you mean --name?)"),
        (["run", "05", "-p", "config", "x.yaml"], "-p config: 05_compare takes no config: it compares"),
        (["run", "06", "-p", "config", "x.yaml"], "-p config: 06_weight_analysis takes no config: it reads"),
    ],
)
def test_cli_workflow_errors_are_one_line_with_status_2(tiny_workflow, args, message):
    done = _wldetect(*args, env_runs=tiny_workflow["runs"])
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {done.stderr.strip()[7:]}" and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not tiny_workflow["runs"].exists() or not any(tiny_workflow["runs"].iterdir())


def test_a_sweep_whose_baseline_failed_makes_no_comparison_and_names_it(tiny_workflow):
    """The first threshold's run is the baseline of every delta and McNemar test: when it failed, the first
    masked run must not silently take its place; the other runs' records are kept."""
    from wldetect.workflow.runs import create_run

    runs_root = tiny_workflow["runs"]
    baseline = create_run("s", kind="03_train", parameters={"threshold": 0}, threshold=0, root=runs_root)
    baseline.fail("RuntimeError: CUDA out of memory")
    masked = [create_run("s", kind="03_train", parameters={}, threshold=t, root=runs_root) for t in (5, 10)]
    for run in masked:
        run.finish({"accuracy": 0.9})
    for raise_on_failure in (True, False):
        with pytest.raises(WLDetectError) as raised:
            notebooks.sweep_report([baseline, *masked], "s", runs_root=runs_root, raise_on_failure=raise_on_failure)
        message = str(raised.value)
        expected = f"sweep: the baseline run {baseline.run_id} (threshold 0) failed (RuntimeError: CUDA out of memory)"
        assert message.startswith(expected)
        assert "no comparison report was made" in message and "\n" not in message
    assert sorted(p.name for p in runs_root.iterdir()) == sorted([baseline.run_id, *(r.run_id for r in masked)])
    assert [r.manifest()["status"] for r in masked] == ["completed", "completed"]


def test_sweep_p_overrides_reach_every_run(tiny_training_config, tiny_workflow, monkeypatch, capsys):
    """`wldetect sweep -p overrides MAPPING` (the README's way to repeat a sweep with other seeds): the mapping
    is parsed as `wldetect run -p` parses it and lands in the parameters of every run the sweep makes."""
    from wldetect.cli import main

    executed = []

    def execute_without_a_kernel(run, name, parameters, *, raise_on_failure=True, env=None):
        executed.append((name, parameters))
        run.finish()
        return run

    # The kernels are executed by the slow tests above; here the question is what parameters reach them.
    monkeypatch.setattr(notebooks, "execute_into_run", execute_without_a_kernel)
    overrides = {"training.seed": 7, "training.epochs": 2}
    argv = ["sweep", "--config", str(tiny_training_config), "--thresholds", "0,3", "--name", "seeded"]
    argv += ["-p", "overrides", '{"training.seed": 7, "training.epochs": 2}']
    monkeypatch.setattr(sys, "argv", ["wldetect", *argv])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 0, capsys.readouterr().err
    assert [name for name, _ in executed] == ["01_count_tokens", "03_train", "03_train", "05_compare"]
    assert all(parameters["overrides"] == overrides for name, parameters in executed[:3])
    table = list_runs(tiny_workflow["runs"])
    assert sorted(table["kind"]) == ["01_count_tokens", "03_train", "03_train", "05_compare"]
    for run_id, kind in zip(table["run_id"], table["kind"]):
        if kind != "05_compare":
            assert open_run(tiny_workflow["runs"] / run_id).manifest()["parameters"]["overrides"] == overrides
    assert "Sweep report:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    "args, message",
    [
        ([*DEMO_SWEEP, "--seeds", "0,x"], "--seeds '0,x': expected comma-separated whole numbers like 0,1,2"),
        ([*DEMO_SWEEP, "--seeds", "0,-1"], "expected comma-separated whole numbers >= 0"),
        ([*DEMO_SWEEP, "--seeds", "1,1"], "--seeds [1, 1]: each seed once"),
        ([*DEMO_SWEEP, "--seeds", "0,1", "-p", "overrides", "{training.seed: 1}"], "--seeds and -p overrides training.seed both"),
        (["run", "03", "-p", "seed", "-1"], "-p seed -1: expected a whole number >= 0"),
        (["run", "03", "-p", "seed", "one"], "-p seed 'one': expected a whole number"),
        (["run", "03", "--seeds", "0,1", "-p", "seed", "2"], "--seeds and -p seed both set the training seed"),
        (["run", "02", "--seeds", "0,1"], "-p seed: not a parameter of 02_create_mask"),
        (["run", "03", "-p", "seed", "1", "-p", "overrides", "{training.seed: 2}"], "-p seed 1 and -p overrides training.seed 2 disagree"),
    ],
)
def test_seed_errors_are_one_line_with_status_2_and_leave_no_run(tiny_workflow, args, message):
    done = _wldetect(*args, env_runs=tiny_workflow["runs"])
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not tiny_workflow["runs"].exists() or not any(tiny_workflow["runs"].iterdir())


def test_sweep_seeds_train_every_threshold_with_every_seed(tiny_training_config, tiny_workflow, monkeypatch, capsys):
    """`wldetect sweep --seeds 0,1`: every threshold once per seed, each an ordinary 03 run whose id and
    manifest name its seed, seed by seed with each seed's baseline first, then one report of them all."""
    from wldetect.cli import main

    executed = []

    def execute_without_a_kernel(run, name, parameters, *, raise_on_failure=True, env=None):
        executed.append((name, parameters, run))
        run.finish()
        return run

    monkeypatch.setattr(notebooks, "execute_into_run", execute_without_a_kernel)  # what reaches the kernels
    argv = ["sweep", "--config", str(tiny_training_config), "--thresholds", "0,3", "--seeds", "0,1", "--name", "seeded", "--jobs", "2"]
    monkeypatch.setattr(sys, "argv", ["wldetect", *argv])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 0, capsys.readouterr().err
    assert [name for name, _, _ in executed] == ["01_count_tokens", *["03_train"] * 4, "05_compare"]
    assert "seed" not in executed[0][1] and "seed" not in executed[0][2].manifest()
    trained = executed[1:5]  # run by two threads, so in either order within a pair
    assert sorted((p["seed"], p["threshold"]) for _, p, _ in trained) == [(0, 0), (0, 3), (1, 0), (1, 3)]
    for _, parameters, run in trained:
        assert run.run_id.endswith(f"-seeded-t{parameters['threshold']}-s{parameters['seed']}")
        assert run.manifest()["seed"] == parameters["seed"]
    compared = executed[-1][1]["runs_to_compare"]
    assert [Path(p).name[-6:] for p in compared] == ["-t0-s0", "-t3-s0", "-t0-s1", "-t3-s1"]


def test_a_sweep_whose_baseline_failed_in_one_seed_makes_no_report_and_names_the_seed(tiny_workflow):
    from wldetect.workflow.runs import create_run

    runs_root = tiny_workflow["runs"]
    made = {}
    for seed in (0, 1):
        for threshold in (0, 5):
            made[threshold, seed] = create_run("s", kind="03_train", parameters={}, threshold=threshold, root=runs_root, seed=seed)
    for key, run in made.items():
        run.fail("RuntimeError: killed") if key == (0, 1) else run.finish({"accuracy": 0.9})
    with pytest.raises(WLDetectError) as raised:
        notebooks.sweep_report(list(made.values()), "s", runs_root=runs_root)
    assert str(raised.value).startswith(f"sweep: the baseline run {made[0, 1].run_id} (threshold 0, seed 1) failed (RuntimeError: killed)")
    assert len(list(runs_root.iterdir())) == 4  # no report


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory):
    """A 2-threshold x 2-seed sweep on the tiny model, executed for real: step 1, four training runs, the report."""
    root = tmp_path_factory.mktemp("seeded-sweep")
    with module_tiny_project(root) as (config_path, _, patch):
        evaluate_on_text_directory(root, config_path)
        patch.setenv("WLDETECT_RUNS_DIR", str(root / "runs"))
        patch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
        report = notebooks.sweep(str(config_path), [0, 3], seeds=[0, 1], name="seeds", jobs=2)
        yield {"report": report, "trained": [open_run(p) for p in report.manifest()["parameters"]["runs"]]}


@slow
def test_a_two_seed_sweep_reports_per_seed_and_across_seed_rows_and_a_verdict_naming_the_seeds(seeded_sweep):
    import pandas as pd

    report, trained = seeded_sweep["report"], seeded_sweep["trained"]
    assert [run.run_id[-6:] for run in trained] == ["-t0-s0", "-t3-s0", "-t0-s1", "-t3-s1"]
    for run, seed in zip(trained, (0, 0, 1, 1)):  # the seed training used, in the manifest and the artifacts
        assert run.manifest()["seed"] == seed and run.manifest()["status"] == "completed"
        summary = json.loads((run.artifacts_dir / "training_summary.json").read_text())
        assert summary["config"]["training"]["seed"] == seed
    executed = _assert_clean_execution(report, "05_compare")
    assert _images(executed) >= 2
    overall = pd.read_csv(report.path / "overall.csv", index_col=0)
    assert list(overall["seed"]) == [0, 0, 1, 1] and list(overall["baseline"]) == [trained[0].run_id] * 2 + [trained[2].run_id] * 2
    across = pd.read_csv(report.path / "across_seeds.csv", index_col=0)
    assert list(across.index) == [3] and across.loc[3, "n_seeds"] == 2 and across.loc[3, "seeds"] == "0, 1"
    row = across.loc[3]
    per_seed = overall.loc[[trained[1].run_id, trained[3].run_id], "accuracy_delta"]
    assert row["accuracy_delta"] == pytest.approx(per_seed.mean(), abs=1e-6)
    assert row["ci_low"] <= per_seed.min() + 1e-9 and per_seed.max() - 1e-9 <= row["ci_high"]
    assert {"p_mcnemar_s0", "p_mcnemar_s1", "same_sign", "real"} <= set(across.columns)
    assert (report.path / "language_across_seeds.csv").is_file()
    code = [c for c in executed.cells if c.cell_type == "code"]
    verdict = _printed(code[-2])
    assert "over seeds 0, 1" in verdict and "Across seeds 0, 1" in verdict
    real = "a real loss" in verdict or "a real gain" in verdict
    assert real == bool(row["real"]) and ("not a real effect" in verdict) != bool(row["real"])
    assert report.manifest()["metrics"]["seeds"] == [0, 1]


@slow
def test_a_one_seed_sweep_report_says_its_verdict_ignores_seed_variance(executed):
    notebook = nbformat.read(str(executed["05_compare"].path / "05_compare.ipynb"), as_version=4)
    verdict = _printed([c for c in notebook.cells if c.cell_type == "code"][-2])
    assert verdict.startswith("One seed: one training seed (seed 3), so this verdict ignores seed-to-seed variance")


def test_step_3s_seed_parameter_becomes_training_seed():
    from wldetect.workflow.cells import training_overrides

    assert training_overrides({"training.learning_rate": 0.1}, epochs=2, seed=4) == {
        "training.learning_rate": 0.1, "training.epochs": 2, "training.seed": 4,
    }  # fmt: skip
    assert training_overrides({"training.seed": 4}, seed=4) == {"training.seed": 4}
    assert training_overrides({}) == {}
    assert notebooks.chosen_seed({"overrides": {"training.seed": 5}}) == 5 and notebooks.chosen_seed({"seed": 0}) == 0

"""The notebook workflow: clean committed notebooks, papermill execution into run records, sweeps, failures."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import TINY_LANGUAGES, tiny_sentences

from wldetect import workflow
from wldetect.errors import WLDetectError
from wldetect.runs import list_runs, open_run

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FILES = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_all_six_step_notebooks_exist():
    assert [p.stem for p in NOTEBOOK_FILES] == workflow.NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebooks_are_committed_clean_with_one_parameters_cell(path):
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code_cells), "stored outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in notebook.cells) == 1
    assert notebook.metadata["kernelspec"]["name"] == workflow.KERNEL
    assert any(c.cell_type == "markdown" for c in notebook.cells)


def test_the_notebooks_kernel_resolves_to_this_environment():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(workflow.KERNEL)
    # jupyter_client runs a spec whose argv starts with "python" with its own interpreter: the .venv's.
    assert spec.argv[0] in ("python", "python3", sys.executable)
    assert spec.language == "python"


@pytest.fixture
def tiny_workflow(tmp_path, tiny_training_config, monkeypatch):
    """Runs land in tmp; the evaluation set is a small directory of <code>.txt files in the tiny languages."""
    evalset = tmp_path / "evalset"
    evalset.mkdir()
    for code in TINY_LANGUAGES:
        (evalset / f"{code}.txt").write_text("\n".join(tiny_sentences(code, 12, seed=9)) + "\n", encoding="utf-8")
    data = yaml.safe_load(tiny_training_config.read_text())
    data["evaluation"] = {"dataset": str(evalset)}
    tiny_training_config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
    return {"config": str(tiny_training_config), "evalset": str(evalset), "runs": tmp_path / "runs"}


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


def test_every_step_notebook_executes_into_a_complete_run_record(tiny_workflow):
    config = tiny_workflow["config"]
    counted = workflow.run_notebook("01_count_tokens", {"config": config})
    _assert_clean_execution(counted, "01_count_tokens")
    assert (counted.path / "token_counts.npy").is_file()
    assert set(counted.manifest()["inputs"]) >= {"training_data", "embeddings", "token_counts"}

    masked = workflow.run_notebook("02_create_mask", {"config": config, "threshold": 3})
    executed = _assert_clean_execution(masked, "02_create_mask")
    assert _images(executed) >= 1 and (masked.path / "mask_coverage.png").is_file()
    printed = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Tokens masked" in printed and "Validation: masked tokens are" in printed  # the seed's report, inline

    baseline = workflow.run_notebook("03_train", {"config": config, "threshold": 0})
    trained = workflow.run_notebook("03_train", {"config": config, "threshold": 3})
    for run in (baseline, trained):
        executed = _assert_clean_execution(run, "03_train")
        assert _images(executed) >= 2  # training curves and confusion heatmap
        assert (run.artifacts_dir / "lookup_table_fp8_e3m4.safetensors").is_file()
        assert 0.0 <= run.manifest()["metrics"]["accuracy"] <= 1.0
    assert trained.run_id.endswith("-t3") and (trained.artifacts_dir / "token_mask.npy").is_file()

    evaluated = workflow.run_notebook(
        "04_evaluate",
        {"model_path": str(trained.artifacts_dir), "dataset": tiny_workflow["evalset"], "compare_with": str(baseline.artifacts_dir)},
    )
    assert _images(_assert_clean_execution(evaluated, "04_evaluate")) >= 1

    compared = workflow.run_notebook("05_compare", {"runs_to_compare": [str(baseline.path), str(trained.path)]})
    assert _images(_assert_clean_execution(compared, "05_compare")) >= 2
    assert (compared.path / "overall.csv").is_file()

    weights = workflow.run_notebook(
        "06_weight_analysis", {"model_path": str(trained.artifacts_dir), "baseline_path": str(baseline.artifacts_dir)}
    )
    assert _images(_assert_clean_execution(weights, "06_weight_analysis")) >= 1

    table = list_runs(tiny_workflow["runs"])
    assert len(table) == 7 and set(table["status"]) == {"completed"}


def test_a_failing_step_is_recorded_as_failed_with_the_error_visible(tiny_workflow):
    with pytest.raises(WLDetectError, match="notebook 02_create_mask failed"):
        workflow.run_notebook("02_create_mask", {"config": tiny_workflow["config"], "threshold": -1})
    (run_path,) = list(tiny_workflow["runs"].iterdir())
    run = open_run(run_path)
    assert run.manifest()["status"] == "failed" and "threshold" in run.manifest()["error"]
    executed = nbformat.read(str(run.path / "02_create_mask.ipynb"), as_version=4)
    assert any(o.output_type == "error" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert (run.path / "02_create_mask.html").is_file()


def test_raw_papermill_writes_its_own_run_record_and_remembers_out(tiny_workflow, tmp_path):
    out = tmp_path / "elsewhere" / "trained.ipynb"
    out.parent.mkdir()
    subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/03_train.ipynb", str(out),
         "-p", "threshold", "2", "-p", "config", tiny_workflow["config"], "--no-progress-bar"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    (run_path,) = list(tiny_workflow["runs"].iterdir())
    manifest = open_run(run_path).manifest()
    assert manifest["status"] == "completed" and manifest["threshold"] == 2
    assert manifest["papermill_output"] == str(out)
    assert (run_path / "artifacts" / "projection.safetensors").is_file()


def test_sweep_trains_each_threshold_and_writes_one_report(tiny_workflow):
    report = workflow.sweep(tiny_workflow["config"], [0, 3], name="tiny-sweep", jobs=2)
    executed = _assert_clean_execution(report, "05_compare")
    assert _images(executed) >= 2
    trained = report.manifest()["parameters"]["runs"]
    assert [open_run(p).manifest()["threshold"] for p in trained] == [0, 3]
    overall = (report.path / "overall.csv").read_text()
    assert overall.count("\n") == 3  # header + two runs


def _wldetect(*args: str, env_runs: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "WLDETECT_RUNS_DIR": str(env_runs), "WLDETECT_PROJECT_ROOT": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "wldetect.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_cli_run_executes_into_a_run_record_and_runs_lists_it(tiny_workflow, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"config": tiny_workflow["config"]}))
    done = _wldetect("run", "02", "-f", str(params), "-p", "threshold", "3", env_runs=tiny_workflow["runs"])
    assert done.returncode == 0, done.stderr
    (run_path,) = list(tiny_workflow["runs"].iterdir())
    assert run_path.name.endswith("-t3") and (run_path / "02_create_mask.html").is_file()
    assert open_run(run_path).manifest()["parameters"]["threshold"] == 3
    listed = _wldetect("runs", env_runs=tiny_workflow["runs"])
    assert run_path.name in listed.stdout and "02_create_mask" in listed.stdout and "completed" in listed.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "07_nothing"], "unknown notebook '07_nothing'"),
        (["run", "02", "-p", "threshold"], "unexpected argument '-p': use -p NAME VALUE"),
        (["run", "02", "-f", "absent.yaml"], "absent.yaml: parameters file not found"),
        (["sweep", "--config", "params/training/demo.yaml", "--thresholds", "0,ten"], "expected comma-separated integers"),
    ],
)
def test_cli_workflow_errors_are_one_line_with_status_2(tiny_workflow, args, message):
    done = _wldetect(*args, env_runs=tiny_workflow["runs"])
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {done.stderr.strip()[7:]}" and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not tiny_workflow["runs"].exists() or not any(tiny_workflow["runs"].iterdir())

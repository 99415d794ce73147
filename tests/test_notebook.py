"""The notebooks' support: one setup call, one closing call, and the verdicts in words checked against the numbers."""

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse

from wldetect.errors import WLDetectError
from wldetect.steps.weight_analysis import WeightAnalysis, summarise_weights
from wldetect.workflow.cells import (
    count_metrics,
    counts_verdict,
    notebook_run,
    training_metrics,
    training_verdict,
    weights_metrics,
    weights_verdict,
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "params").mkdir(parents=True)
    (root / "notebooks").mkdir()
    monkeypatch.chdir(root / "notebooks")  # as JupyterLab starts a kernel; restored after the test
    monkeypatch.setenv("WLDETECT_PROJECT_ROOT", str(root))
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    return root


def test_notebook_run_is_the_whole_setup_and_close_the_whole_ending(project, tmp_path, capsys):
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        run = notebook_run("demo", kind="02_create_mask", parameters={"threshold": 3}, threshold=3)
        assert Path.cwd() == project  # relative paths now mean the same as under papermill
        assert any(f[0] == "ignore" and f[2] is TqdmWarning for f in warnings.filters)
    assert capsys.readouterr().out == f"Run record: {run.path}\n"
    assert run.path.parent == tmp_path / "runs" and run.run_id.endswith("-demo-t3")
    assert run.manifest()["status"] == "running" and run.manifest()["kind"] == "02_create_mask"
    # papermill's -p run_dir (what `wldetect run` passes): the running record is the notebook's own
    again = notebook_run("x", kind="02_create_mask", parameters={"threshold": 4}, threshold=4, run_dir=run.path)
    assert again.path == run.path and json.loads((run.path / "manifest.json").read_text())["threshold"] == 4
    assert capsys.readouterr().out == f"Run record: {run.path}\n"

    counts = tmp_path / "counts.npy"
    counts.write_bytes(b"123")
    run.close({"tokens_masked": 5}, inputs={"token_counts": counts, "token_mask": None})
    manifest = run.manifest()
    assert manifest["status"] == "completed" and manifest["metrics"] == {"tokens_masked": 5}
    assert set(manifest["inputs"]) == {"token_counts"} and manifest["inputs"]["token_counts"]["sha256"]
    assert capsys.readouterr().out == f"Run {run.run_id} completed: {run.path}\n"

    finished = (run.path / "manifest.json").read_bytes()
    with pytest.raises(WLDetectError, match="the run is completed, not running"):  # a finished record stays as it was
        notebook_run("x", kind="02_create_mask", parameters={"threshold": 5}, threshold=5, run_dir=run.path)
    assert (run.path / "manifest.json").read_bytes() == finished


def _token_counts():
    # 10 rows: 4 never seen, 2 seen once; eng 60 tokens in 3 examples, fra 15 in 5 examples
    per_language = np.array(
        [[30, 0], [20, 5], [9, 1], [1, 0], [0, 1], [0, 8], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.int64
    )
    return SimpleNamespace(
        counts=per_language.sum(axis=1),
        per_language=scipy.sparse.csr_matrix(per_language),
        languages=["eng_Latn", "fra_Latn"],
        n_examples=8,
        examples_per_language={"eng_Latn": 3, "fra_Latn": 5},
    )


def test_counts_verdict_states_the_numbers_of_the_counts():
    text = counts_verdict(_token_counts())
    assert "75 token occurrences in 8 examples of 2 languages." in text
    assert "6 of the 10 vocabulary rows (60.0%) occur at least once; 4 (40.0%) never occur" in text
    assert "2 tokens (33.3% of those seen) occur exactly once" in text
    assert "the 1% most frequent tokens carry 40.0% of all occurrences" in text  # one token of 10: 30 of 75
    assert "Most represented: eng_Latn (60 tokens, 80.0%, 20.0 per example)" in text
    assert "least represented: fra_Latn (15 tokens, 20.0%, 3.0 per example)" in text
    assert "4.0x the tokens of the least" in text
    assert count_metrics(_token_counts()) == {"vocab_size": 10, "total_tokens": 75, "distinct_tokens": 6, "examples": 8}


def _training_result(mask):
    return SimpleNamespace(
        steps=20, total_steps=20, epochs=2, seconds=3.25, device="cpu", final_loss=0.1234, completed=True,
        history=[{"loss": 0.1234}], examples_per_second=1000.0, mask=mask,
    )  # fmt: skip


def test_training_verdict_reports_loss_evaluation_and_what_masked_tokens_learned():
    evaluation = SimpleNamespace(
        overall={"accuracy": 0.975, "f1_macro": 0.9612, "n_sentences": 400, "n_languages": 20},
        dataset={"name": "pud", "kind": "pud", "split": "dev"},
    )
    mask = {
        "threshold": 10, "vocab_size": 1000, "tokens_masked": 800, "occurrences_masked_fraction": 0.05,
        "masked_tokens_seen_in_training": 120, "masked_weights_nonzero_after_training": 118,
        "masked_weights_max_abs_after_training": 0.25,
    }  # fmt: skip
    text = training_verdict(_training_result(mask), evaluation)
    assert "Trained 20 steps (2 epochs) on cpu in 3.2 s; final loss 0.1234." in text
    assert "Evaluated on pud: accuracy 97.50%, macro F1 0.9612 (400 sentences, 20 languages)." in text
    assert "Mask (threshold 10): 800 of 1,000 tokens (80.0%) started at weight 0.0; they carry 5.00%" in text
    assert "118 of the 800 masked tokens learned a non-zero weight; 120 of the 800 occur in the training data, the other 680" in text
    metrics = training_metrics(_training_result(mask), evaluation)
    assert metrics["accuracy"] == 0.975 and metrics["tokens_masked"] == 800 and metrics["occurrences_masked_fraction"] == 0.05

    flores = SimpleNamespace(overall=evaluation.overall, dataset={"name": "flores", "kind": "flores_plus", "split": "devtest"})
    baseline = training_verdict(_training_result({"tokens_masked": 0, "vocab_size": 1000}), flores)
    assert "Evaluated on flores_devtest" in baseline and "No mask: every token weight started at 1.0" in baseline
    assert "No evaluation ran" in training_verdict(_training_result(None))
    assert training_metrics(_training_result(None))["tokens_masked"] == 0


def test_weights_verdict_counts_kept_moved_and_masked_revived():
    mask = np.array([True] * 6 + [False] * 4)
    weights = np.array([1.0, 1.0, 1.5, 0.5, -0.2, 1.0, 0.0, 0.3, 0.005, 0.0])
    counts = np.array([5, 5, 5, 5, 5, 5, 0, 3, 2, 1])
    analysis = WeightAnalysis(weights, mask, summarise_weights(weights, mask), counts)
    text = weights_verdict(analysis)
    assert "Kept tokens: 3 of 6 (50.0%) moved from their initial 1.0" in text and "1 negative" in text
    assert "Masked tokens: 2 of 4 (50.0%) learned a non-zero weight (1 with |w| > 0.01, largest 0.300); 2 stayed exactly at 0.0" in text
    assert "3 of the masked tokens occur in the training counts" in text
    assert weights_metrics(analysis) == {"masked_tokens_changed": 2}

    baseline = WeightAnalysis(weights[:6], mask[:6], summarise_weights(weights[:6], mask[:6]))
    assert "No token was masked" in weights_verdict(baseline) and weights_metrics(baseline) == {"masked_tokens_changed": 0}


def test_the_weight_analysis_and_the_training_record_count_revived_tokens_alike():
    """Any difference from the initial weight is training's (a token without gradient keeps it bit for bit):
    step 6 must count a masked token that learned 1e-9 as revived, as step 3's mask record (`!= 0`) does;
    with a tolerance the two reports of one run disagreed (67,774 vs 67,791 on the demo's t10 run)."""
    from wldetect.steps.masking import MaskInfo

    mask = np.array([True, True, True, False, False, False, False])
    weights = np.array([1.0, 1.0 + 1e-7, 0.8, 0.0, 1e-9, -3e-8, 0.4], dtype=np.float32)
    summary = summarise_weights(weights, mask)
    assert summary.loc["kept", "changed"] == 2 and summary.loc["masked", "changed"] == 3
    record = MaskInfo(mask, "test", np.ones(mask.size, dtype=np.int64), threshold=None).record(weights)
    assert record["masked_weights_nonzero_after_training"] == summary.loc["masked", "changed"]
    text = weights_verdict(WeightAnalysis(weights, mask, summary))
    assert "3 of 4 (75.0%) learned a non-zero weight" in text and "1 stayed exactly at 0.0" in text


def test_the_support_module_does_not_import_what_runs_must_not():
    import subprocess
    import sys

    code = "import sys, wldetect.workflow.runs; assert 'wldetect.workflow.cells' not in sys.modules; import wldetect.workflow.cells"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_a_comparison_of_two_runs_artifacts_records_both_as_inputs_and_lineage(project, tmp_path):
    """`runs/A/artifacts` and `runs/B/artifacts` share their name: keyed by it, the report's manifest kept one
    input and `wldetect runs --lineage` lost a run. Each input is keyed by the run that wrote it."""
    from wldetect.workflow.cells import compared_inputs
    from wldetect.workflow.runs import create_run, lineage

    trained = []
    for threshold in (0, 10):
        run = create_run("demo", kind="03_train", parameters={}, threshold=threshold)
        run.artifacts_dir.mkdir()
        (run.artifacts_dir / "pud_results.json").write_text(f'{{"threshold": {threshold}}}')
        run.finish()
        trained.append(run)
    outside = tmp_path / "elsewhere" / "artifacts"  # a directory no run record holds: keyed by its name
    outside.mkdir(parents=True)
    (outside / "pud_results.json").write_text("{}")
    compared = [str(r.artifacts_dir) for r in trained] + [str(outside), str(trained[0].path)]

    inputs = compared_inputs(compared, None)
    assert list(inputs) == [trained[0].run_id, trained[1].run_id, "artifacts", f"{trained[0].run_id}#2"]
    assert list(inputs.values()) == [r.artifacts_dir / "pud_results.json" for r in trained] + [
        outside / "pud_results.json",
        trained[0].artifacts_dir / "pud_results.json",
    ]

    report = notebook_run("compare", kind="05_compare", parameters={"runs": compared})
    report.close({"runs": len(compared)}, inputs=inputs)
    recorded = report.manifest()["inputs"]
    assert [recorded[r.run_id]["run"] for r in trained] == [r.run_id for r in trained]
    assert [run_id for _, run_id, _ in lineage(report.path)] == [report.run_id, trained[0].run_id, trained[1].run_id]


def test_the_comparison_notebook_keys_its_inputs_with_compared_inputs():
    notebook = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / "05_compare.ipynb").read_text())
    closing = "".join(notebook["cells"][-1]["source"])
    assert "run.close(" in closing and "inputs=compared_inputs(runs_to_compare, results)" in closing


def test_step_4_evaluates_where_its_config_says_unless_told_otherwise(tiny_training_config):
    import yaml

    from wldetect.workflow.cells import evaluation_set_parameters

    data = yaml.safe_load(tiny_training_config.read_text())
    data["evaluation"] = {"dataset": "flores_plus", "split": "devtest"}
    tiny_training_config.write_text(yaml.safe_dump(data))
    assert evaluation_set_parameters(str(tiny_training_config), None, None) == ("flores_plus", "devtest")
    assert evaluation_set_parameters(str(tiny_training_config), "pud", "dev") == ("pud", "dev")  # given: kept
    assert evaluation_set_parameters(str(tiny_training_config), None, "dev") == ("flores_plus", "dev")
    assert evaluation_set_parameters(None, None, None) == ("pud", "dev")  # no config: the shipped set, offline

"""Nothing lost, nothing silently wrong (issue 13): staged results directories, locks, one result per input
line, and one-line errors with exit status 2 for every class of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import module_tiny_project, use_cache

from wldetect.errors import WLDetectError
from wldetect.io import StagedDirectory, directory_lock, lock_file, split_lines
from wldetect.steps.training import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with one trained model (no evaluation), shared by the tests of this module."""
    root = tmp_path_factory.mktemp("robustness-project")
    with module_tiny_project(root) as (config_path, _, patch):
        from wldetect.steps.counting import count_tokens

        counts = count_tokens(config_path, output=root / "counts" / "token_counts.npy", verbose=False)
        result = train(config_path, output_dir=root / "model", token_ids=counts.token_ids_path, verbose=False)
        yield {
            "root": root, "config": config_path, "model": result.artifacts_dir, "counts": counts.counts_path,
            "token_ids": counts.token_ids_path,
        }  # fmt: skip


@pytest.fixture
def project_env(project, monkeypatch):
    use_cache(monkeypatch, project["root"] / "cache")
    return project


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def wldetect(*args: str, stdin: bytes | None = None, cwd: Path = REPO, env: dict | None = None):
    """The installed command as a user runs it: a subprocess calling `wldetect.cli.main`."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from wldetect.cli import main; main()", *args],
        input=stdin, cwd=cwd, env=environment, capture_output=True, timeout=300,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ nothing lost


def test_a_diverging_retrain_leaves_the_earlier_model_byte_identical_and_loadable(project_env, tmp_path):
    import shutil

    from wldetect.config import load_training_config
    from wldetect.detect import WLDetect

    directory = tmp_path / "model"
    shutil.copytree(project_env["model"], directory)
    before = snapshot(directory)
    diverging = load_training_config(project_env["config"], {"training.learning_rate": 1e30})
    with pytest.raises(WLDetectError, match=f"training diverged.*; {directory} is unchanged"):
        train(diverging, output_dir=directory, token_ids=project_env["token_ids"], verbose=False)
    assert snapshot(directory) == before
    assert WLDetect.load(directory).predict("the cat sat on the mat")[0] == "eng_Latn"
    assert not (tmp_path / ".model.staging").exists() and not lock_file(directory).exists()


def test_two_concurrent_trains_into_one_directory_do_not_both_succeed(project_env, tmp_path, monkeypatch):
    """The first run is held at its first checkpoint while a second one starts into the same directory."""
    import wldetect.steps.training as training

    directory = tmp_path / "shared"
    reached, release = threading.Event(), threading.Event()
    save_checkpoint = training.save_checkpoint

    def held_save(*args, **kwargs):
        if threading.current_thread().name == "first":
            reached.set()
            release.wait(60)
        return save_checkpoint(*args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", held_save)
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["first"] = train(project_env["config"], token_ids=project_env["token_ids"], output_dir=directory, verbose=False)
        except BaseException as err:  # noqa: BLE001 (reported by the assertion below)
            outcome["first"] = err

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert reached.wait(60)
    try:
        with pytest.raises(WLDetectError, match="is being written by process"):
            train(project_env["config"], token_ids=project_env["token_ids"], output_dir=directory, verbose=False)
    finally:
        release.set()
        thread.join(120)
    assert getattr(outcome["first"], "completed", False), outcome["first"]
    assert (directory / "projection.safetensors").is_file()


def test_a_lock_of_another_live_process_is_refused_and_a_stale_one_taken_over(tmp_path):
    target = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from wldetect.io import directory_lock\nwith directory_lock({str(target)!r}):\n"
         "    print('held', flush=True); input()"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WLDetectError, match=f"being written by process {holder.pid}"):
            with StagedDirectory(target, swap=True):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert lock_file(target).exists()  # killed: its lock is left behind, stale
    with StagedDirectory(target, swap=True) as staged:
        (staged.staging / "result.txt").write_text("new")
        staged.commit()
    assert (target / "result.txt").read_text() == "new" and not lock_file(target).exists()
    with directory_lock(target), directory_lock(target):  # re-entrant in one thread
        pass


def test_a_swap_keeps_the_users_files_and_drops_what_the_new_outputs_replace(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "old_results.json").write_text("old")
    (target / "projection.safetensors").write_text("old")
    with StagedDirectory(target, swap=True) as staged:
        (staged.staging / "projection.safetensors").write_text("new")
        replaced = staged.commit(replaced={"old_results.json"})
    assert sorted(replaced) == ["old_results.json", "projection.safetensors"]
    assert snapshot(target) == {"notes.txt": b"mine", "projection.safetensors": b"new"}


def assert_filter_lookup_refused(project_env, directory: Path, match: str) -> None:
    """filter-lookup into `directory` without --overwrite: a WLDetectError matching `match` from the API, one
    line and exit 2 from the CLI, and the directory unchanged by either."""
    from wldetect.steps.posthoc import filter_lookup

    before = snapshot(directory)
    with pytest.raises(WLDetectError, match=match):
        filter_lookup(project_env["model"], project_env["counts"], 3, directory, verbose=False)
    assert snapshot(directory) == before
    result = wldetect("filter-lookup", "--model-path", str(project_env["model"]), "--token-counts",
                      str(project_env["counts"]), "--threshold", "3", "--output-dir", str(directory),
                      env={"WLDETECT_CACHE_DIR": str(project_env["root"] / "cache")})  # fmt: skip
    assert result.returncode == 2 and result.stderr.decode().count("\n") == 1, result.stderr
    assert snapshot(directory) == before


def test_filter_lookup_into_another_models_directory_is_refused(project_env, tmp_path):
    import shutil

    from wldetect.steps.posthoc import filter_lookup

    other = tmp_path / "other"
    shutil.copytree(project_env["model"], other)
    assert_filter_lookup_refused(project_env, other, "holds a different model .training with .*--overwrite")

    filtered = tmp_path / "filtered"
    filter_lookup(project_env["model"], project_env["counts"], 3, filtered, verbose=False)
    filter_lookup(project_env["model"], project_env["counts"], 5, filtered, verbose=False)  # its own: allowed
    filter_lookup(project_env["model"], project_env["counts"], 3, other, verbose=False, overwrite=True)
    assert '"mode": "post-hoc"' in (other / "mask_stats.json").read_text()
    assert not (other / "checkpoints").exists()  # the trained model's checkpoints described the replaced model


def someone_elses_directory(directory: Path) -> Path:
    """A directory of files that no wldetect run wrote: another tool's checkpoint, an experiment's results
    (named like an evaluation's), notes, and a mask named like a model's."""
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "checkpoints" / "my_model.ckpt").write_bytes(b"weights of another tool")
    (directory / "experiment_results.json").write_text('{"mine": true}')
    (directory / "notes.txt").write_text("notes")
    np.save(directory / "token_mask.npy", np.ones(3, dtype=bool))
    return directory


def test_training_into_a_directory_of_files_but_no_model_is_refused_unless_overwrite(project_env, tmp_path):
    directory = someone_elses_directory(tmp_path / "mine")
    before = snapshot(directory)
    with pytest.raises(WLDetectError, match=r"--output-dir .*mine holds files but no wldetect model \(checkpoints/, "
                       r"experiment_results.json, notes.txt, token_mask.npy\); give --overwrite"):  # fmt: skip
        train(project_env["config"], token_ids=project_env["token_ids"], output_dir=directory, verbose=False)
    assert snapshot(directory) == before
    result = wldetect("train", "--config", str(project_env["config"]), "--output-dir", str(directory),
                      env={"WLDETECT_CACHE_DIR": str(project_env["root"] / "cache")})  # fmt: skip
    assert result.returncode == 2 and result.stderr.decode().count("\n") == 1, result.stderr
    assert b"holds files but no wldetect model" in result.stderr
    assert snapshot(directory) == before and not (tmp_path / ".mine.staging").exists()

    # --overwrite adds the model: what makes up a model is replaced (an unmasked run has no mask: the stale
    # one goes), everything else is kept, in checkpoints/ too, next to the run's own checkpoints
    trained = train(project_env["config"], token_ids=project_env["token_ids"], output_dir=directory, verbose=False, overwrite=True)
    assert trained.completed and (directory / "projection.safetensors").is_file()
    after = snapshot(directory)
    for name in ("checkpoints/my_model.ckpt", "experiment_results.json", "notes.txt"):
        assert after[name] == before[name], name
    assert "token_mask.npy" not in after
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == [
        "checkpoint_step_00000015.pt", "checkpoint_step_00000016.pt", "my_model.ckpt",
    ]  # fmt: skip
    # now it holds a model of this config: the next run replaces it without --overwrite, keeping the same files
    train(project_env["config"], token_ids=project_env["token_ids"], output_dir=directory, verbose=False)
    again = snapshot(directory)
    for name in ("checkpoints/my_model.ckpt", "experiment_results.json", "notes.txt"):
        assert again[name] == before[name], name


def test_training_into_an_empty_or_missing_directory_needs_no_overwrite(project_env, tmp_path):
    (tmp_path / "empty").mkdir()
    assert train(project_env["config"], token_ids=project_env["token_ids"], output_dir=tmp_path / "empty", verbose=False).completed
    assert train(project_env["config"], token_ids=project_env["token_ids"], output_dir=tmp_path / "new" / "model", verbose=False).completed
    assert (tmp_path / "empty" / "projection.safetensors").is_file()
    assert (tmp_path / "new" / "model" / "projection.safetensors").is_file()


def test_filter_lookup_into_a_directory_of_files_but_no_model_is_refused_unless_overwrite(project_env, tmp_path):
    from wldetect.steps.posthoc import filter_lookup

    directory = someone_elses_directory(tmp_path / "mine")
    before = snapshot(directory)
    assert_filter_lookup_refused(project_env, directory, "mine holds files but no wldetect model .*; give --overwrite")

    filter_lookup(project_env["model"], project_env["counts"], 3, directory, verbose=False, overwrite=True)
    after = snapshot(directory)
    for name in ("checkpoints/my_model.ckpt", "experiment_results.json", "notes.txt"):
        assert after[name] == before[name], name
    assert after["token_mask.npy"] != before["token_mask.npy"]  # the filtered model's own mask
    assert '"mode": "post-hoc"' in (directory / "mask_stats.json").read_text()


def test_a_swap_merges_a_directory_both_sides_have(tmp_path):
    """The new outputs' `checkpoints/` does not take the user's files there with it; replaced paths inside
    a directory are dropped one by one, and a directory left empty by them is not kept."""
    target = tmp_path / "model"
    (target / "checkpoints").mkdir(parents=True)
    (target / "checkpoints" / "checkpoint_step_00000030.pt").write_text("old run")
    (target / "checkpoints" / "checkpoint_step_00000005.pt").write_text("old, same name")
    (target / "checkpoints" / "mine.ckpt").write_text("mine")
    (target / "logs").mkdir()
    (target / "logs" / "old.log").write_text("old")
    with StagedDirectory(target, swap=True) as staged:
        (staged.staging / "checkpoints").mkdir()
        (staged.staging / "checkpoints" / "checkpoint_step_00000005.pt").write_text("new")
        replaced = staged.commit(replaced={"checkpoints/checkpoint_step_00000030.pt", "logs/old.log"})
    assert sorted(replaced) == [
        "checkpoints/checkpoint_step_00000005.pt", "checkpoints/checkpoint_step_00000030.pt", "logs/old.log",
    ]  # fmt: skip
    assert snapshot(target) == {"checkpoints/checkpoint_step_00000005.pt": b"new", "checkpoints/mine.ckpt": b"mine"}
    assert not (target / "logs").exists()


def test_an_existing_mask_is_not_replaced_without_overwrite(project_env, tmp_path):
    mask = tmp_path / "token_mask.npy"
    np.save(mask, np.ones(3, dtype=bool))
    before = mask.read_bytes()
    result = wldetect("create-mask", "--token-counts", str(project_env["counts"]), "--threshold", "2",
                      "--output", str(mask))  # fmt: skip
    assert result.returncode == 2 and b"already exists; give --overwrite" in result.stderr
    assert mask.read_bytes() == before
    result = wldetect("create-mask", "--token-counts", str(project_env["counts"]), "--threshold", "2",
                      "--output", str(mask), "--overwrite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert np.load(mask).shape == np.load(project_env["counts"]).shape


def test_a_finished_run_record_is_never_written_into(project_env, tmp_path):
    import json

    record = tmp_path / "runs" / "20260101-000000-x"
    record.mkdir(parents=True)
    (record / "manifest.json").write_text(json.dumps({"status": "completed"}))
    with pytest.raises(WLDetectError, match="inside the run record .*never written into"):
        train(project_env["config"], token_ids=project_env["token_ids"], output_dir=record / "artifacts", verbose=False)
    assert sorted(p.name for p in record.iterdir()) == ["manifest.json"]


# --------------------------------------------------------------------------------- one line, one result

ODD_LINES = ["the cat\u2028sat", "le chat\x85est", "die katze\x1cund", "a\rb", "\x0bline\x0c", "", "[UNK]", "end"]


def test_split_lines_breaks_at_newlines_only():
    text = "\n".join(ODD_LINES) + "\r\n"
    assert split_lines(text) == ODD_LINES
    assert split_lines("a\r\nb") == ["a", "b"] and split_lines("") == [] and split_lines("\n") == [""]


def test_a_file_of_n_lines_gives_n_results_whatever_the_lines_contain(project_env, tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(("\n".join(ODD_LINES) + "\n").encode("utf-8"))
    by_file = wldetect("detect", "--model-path", str(project_env["model"]), "--file", str(path))
    by_stdin = wldetect("detect", "--model-path", str(project_env["model"]), "--file", "-", stdin=path.read_bytes())
    for result in (by_file, by_stdin):
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.decode().split("\n")[:-1]) == len(ODD_LINES)
    assert by_file.stdout == by_stdin.stdout

    from wldetect.sources.evalsets import load_evaluation_set

    directory = tmp_path / "set"
    directory.mkdir()
    (directory / "eng_Latn.txt").write_bytes(path.read_bytes())
    sentences = load_evaluation_set(str(directory)).sentences
    assert sentences["text"].tolist() == [line for line in ODD_LINES if line.strip()]
    assert sentences["id"].tolist()[-1] == len(ODD_LINES)  # ids are line numbers: none shifted


# ------------------------------------------------------------------------------ one line, exit 2

BAD_INPUTS = {
    "non-UTF-8 parameter file": (["train", "--config", "{bad_bytes}"], "not UTF-8 text (invalid byte at offset"),
    "duplicate YAML key": (["train", "--config", "{duplicate}"], "duplicate key 'training' (line"),
    "a boolean for an integer": (["train", "--config", "{boolean}"], "training.batch_size: Input should be a valid integer"),
    "output directory is a file": (["train", "--config", "{config}", "--output-dir", "{a_file}"], "is a file, not a directory"),
    "unwritable eval output": (["eval", "--model-path", "{model}", "--output", "{a_file}/x.json"], "is a file, not a directory"),
    "eval --references misspelt": (["eval", "--model-path", "{model}", "--references", "fasttxt"], "reference 'fasttxt': expected one of"),
    "run -f with a list": (["run", "03", "-f", "{a_list}"], "expected a mapping of keys at the top level, got a list"),
    "run -f invalid YAML": (["run", "03", "-f", "{invalid}"], "not valid YAML (line"),
    "run -p threshold abc": (["run", "03", "-p", "threshold", "abc"], "-p threshold 'abc': expected a whole number"),
    "compare --resamples 0": (["compare", "{model}", "{model}", "--resamples", "0"], "--resamples 0: expected a whole number"),
    "wrong option type": (["detect", "--model-path", "{model}", "--text", "x", "--top-k", "two"], "Invalid value for '--top-k'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_each_bad_input_class_is_one_line_and_exit_2(project_env, tmp_path, case):
    import yaml

    config_text = Path(project_env["config"]).read_text()
    files = {
        "bad_bytes": (b"model_config_path: \xff\xfe\n", ".yaml"),
        "duplicate": ((config_text + "training:\n  epochs: 1\n").encode(), ".yaml"),
        "boolean": (yaml.safe_dump({**yaml.safe_load(config_text), "training": {"batch_size": True}}).encode(), ".yaml"),
        "a_file": (b"not a directory", ".txt"),
        "a_list": (b"- 1\n- 2\n", ".yaml"),
        "invalid": (b"a: [1,\n", ".yaml"),
    }
    paths = {"config": str(project_env["config"]), "model": str(project_env["model"])}
    config_dir = Path(project_env["config"]).parent  # relative paths in a parameter file resolve from here
    for name, (data, suffix) in files.items():
        path = (config_dir if suffix == ".yaml" else tmp_path) / f"{name}{suffix}"
        path.write_bytes(data)
        paths[name] = str(path)
    args, expected = BAD_INPUTS[case]
    result = wldetect(*[a.format(**paths) for a in args], env={"WLDETECT_CACHE_DIR": str(project_env["root"] / "cache")})
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert expected in stderr, stderr
    assert "Traceback" not in stderr


def test_runs_listing_survives_a_run_that_failed_on_a_bad_parameter(tmp_path):
    from wldetect.workflow.runs import create_run, list_runs

    run = create_run("bad", kind="03_train", parameters={"threshold": "abc"}, threshold="abc", root=tmp_path)
    run.fail("TypeError: '>' not supported between instances of 'str' and 'int'")
    create_run("good", kind="03_train", parameters={"threshold": 10}, threshold=10, root=tmp_path).finish()
    import pandas as pd

    table = list_runs(tmp_path)
    thresholds = {("bad" if "bad" in run_id else "good"): t for run_id, t in zip(table["run_id"], table["threshold"])}
    assert thresholds["good"] == 10 and thresholds["bad"] is pd.NA


# ------------------------------------------------------------------- no usable data, no counts file


def _config_with_data(project, name: str, data: bytes) -> Path:
    import yaml

    config_path = Path(project["config"])
    data_path = project["root"] / "data" / name
    data_path.write_bytes(data)
    config = yaml.safe_load(config_path.read_text())
    config["dataset"] = {**config["dataset"], "name": str(data_path)}
    path = config_path.with_name(f"{data_path.stem}.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


NO_USABLE_DATA = {
    "no-usable-rows.jsonl": (
        (
            b'{"text": null, "language": "eng_Latn"}\n{"text": 5, "language": "eng_Latn"}\n'
            b'{"text": "hello there", "language": "xx_Latn"}\n'
        ),
        (
            "{data}: no usable examples of 3 rows: 1 row with null text, 1 with non-string text, "
            "1 in languages not in the model config (xx_Latn)"
        ),
    ),
    "empty.jsonl": (b"", "{data}: empty file, no examples"),
}


@pytest.mark.parametrize("name", sorted(NO_USABLE_DATA))
def test_count_tokens_with_no_usable_example_is_one_line_exit_2_and_writes_nothing(project_env, tmp_path, name):
    data, message = NO_USABLE_DATA[name]
    config = _config_with_data(project_env, name, data)
    output = tmp_path / "counts" / "token_counts.npy"
    result = wldetect("count-tokens", "--training-config", str(config), "--output", str(output),
                      env={"WLDETECT_CACHE_DIR": str(project_env["root"] / "cache")})  # fmt: skip
    expected = message.format(data=project_env["root"] / "data" / name)
    stderr = result.stderr.decode()  # `datasets` may draw its loading progress bar first
    assert result.returncode == 2, stderr
    assert stderr.endswith(f"\nerror: {expected}\n") or stderr == f"error: {expected}\n", stderr
    assert stderr.count("error:") == 1 and "Traceback" not in stderr
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_count_tokens_never_writes_all_zero_counts_even_from_a_stale_cache(project_env, tmp_path):
    """A complete-looking cache entry of zero counts (a damaged one) is recounted, never copied out."""
    import scipy.sparse

    from wldetect.config import load_training_config
    from wldetect.sources.models import load_model
    from wldetect.steps.count_files import COUNTS_FILE, finish_token_ids, save_token_counts, token_ids_path
    from wldetect.steps.counting import _cache_path, cache_key, count_tokens

    config = load_training_config(_config_with_data(project_env, "zero.jsonl", b'{"text": "hi", "language": "eng_Latn"}\n'))
    model = load_model(config.model)
    cache = _cache_path(cache_key(config, model.tokenizer_path, model.vocab_size))
    zeros = np.zeros(model.vocab_size, dtype=np.int64)
    languages = config.model.language_codes
    save_token_counts(cache / COUNTS_FILE, zeros, scipy.sparse.csr_matrix((model.vocab_size, len(languages)), dtype=np.int64), languages, {"n_examples": 1})
    ids = token_ids_path(cache / COUNTS_FILE)
    ids.mkdir()
    finish_token_ids(ids, np.zeros(0, dtype=np.int64), 16, 0, 0, {"vocab_size": model.vocab_size, "languages": languages})
    output = tmp_path / "token_counts.npy"
    counted = count_tokens(config, output=output, verbose=False)
    assert not counted.from_cache and counted.total_tokens > 0 and np.load(output).sum() == counted.total_tokens


def test_a_swap_whose_second_rename_fails_puts_the_old_directory_back(tmp_path, monkeypatch):
    """The swap renames the target aside, then the staging directory in: when the second rename fails (a full
    disk, a permission), the target is renamed back, so the failure leaves the model where it was."""
    import wldetect.io

    target = tmp_path / "model"
    target.mkdir()
    (target / "projection.safetensors").write_text("old")
    real_rename = os.rename

    def rename(source, destination):
        if Path(source).name.startswith(".model.staging"):
            raise OSError(28, "No space left on device")
        real_rename(source, destination)

    with pytest.raises(OSError, match="No space left"):
        with StagedDirectory(target, swap=True) as staged:
            (staged.staging / "projection.safetensors").write_text("new")
            monkeypatch.setattr(wldetect.io.os, "rename", rename)
            staged.commit(replaced={"projection.safetensors"})
    monkeypatch.undo()
    assert (target / "projection.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".model.staging")) == ["model"]


def test_an_evaluations_remains_are_previous_outputs_and_a_users_files_are_not(tmp_path):
    """Predictions and heatmaps whose results file never moved in (an interrupted evaluation) go with the
    model they described; files beside a `*_results.json` of the user's own stay."""
    from wldetect.artifacts import previous_outputs

    for name, text in [
        ("pud_predictions.csv", "id,gold,predicted\n"),  # no pud_results.json: an evaluation's remains
        ("pud_confusion.png", "png"),
        ("mine_results.json", "{}"),  # the user's: no schema_version / overall
        ("mine_predictions.csv", "mine"),
        ("notes_confusion.png", "png"),
    ]:
        (tmp_path / name).write_text(text)
    names = sorted(p.name for p in previous_outputs(tmp_path))
    assert names == ["notes_confusion.png", "pud_confusion.png", "pud_predictions.csv"]


# ------------------------------------------------------------------------ a killed `wldetect run`


@pytest.mark.slow
def test_a_sigkilled_wldetect_run_shows_as_interrupted_and_the_next_run_proceeds(tmp_path):
    """`wldetect run 01_count_tokens` killed with SIGKILL once its kernel has reopened the record: the record
    names both processes, lists as interrupted once both are gone, and the next `wldetect run` completes."""
    import json
    import signal
    import time

    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WLDETECT_RUNS_DIR": str(runs)}
    command = [sys.executable, "-c", "from wldetect.cli import main; main()", "run", "01_count_tokens"]
    cli = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # until the kernel has started the notebook and named itself
            manifests = list(runs.glob("*/manifest.json"))
            roles = [p["role"] for p in json.loads(manifests[0].read_text())["processes"]] if manifests else []
            if "kernel" in roles:
                break
            assert cli.poll() is None, "wldetect run ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("the kernel never reopened the run record")
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
    run_id = manifests[0].parent.name
    for _ in range(150):  # the orphaned kernel notices that its parent is gone and exits
        listed = wldetect("runs", env={"WLDETECT_RUNS_DIR": str(runs)})
        if b"interrupted" in listed.stdout:
            break
        time.sleep(0.2)
    # Whoever sees the dead process first marks the record: `wldetect runs` (saying "Run <id> was interrupted")
    # or, on a loaded machine, the orphaned kernel on its way out; the listing and the manifest agree either way.
    row = [line for line in listed.stdout.decode().splitlines() if run_id in line and "was interrupted" not in line]
    assert listed.returncode == 0 and row and "interrupted" in row[0], listed.stdout
    assert json.loads(manifests[0].read_text())["status"] == "interrupted"

    again = wldetect("run", "01_count_tokens", env={"WLDETECT_RUNS_DIR": str(runs)})
    assert again.returncode == 0, again.stderr
    statuses = {m.parent.name: json.loads(m.read_text())["status"] for m in runs.glob("*/manifest.json")}
    assert statuses.pop(run_id) == "interrupted" and list(statuses.values()) == ["completed"]


# ------------------------------------------------------- notebook parameters: applied or refused, first


PARAMETER_CASES = {
    "batch-size-0": ("01_count_tokens", {"batch_size": 0}, "-p batch_size 0: 01_count_tokens expects a whole number >= 1"),
    "batch-size-negative": ("01_count_tokens", {"batch_size": -1}, "-p batch_size -1: 01_count_tokens expects a whole number >= 1"),
    "num-workers-negative": ("01_count_tokens", {"num_workers": -3}, "-p num_workers -3: 01_count_tokens expects a whole number >= 0"),
    "epochs-0": ("03_train", {"epochs": 0}, "-p epochs 0: 03_train expects a whole number >= 1, or null for the config's training.epochs"),
    "epochs-and-overrides-disagree": (
        "03_train", {"epochs": 2, "overrides": {"training.epochs": 3}}, "-p epochs 2: 03_train expects one number of epochs",
    ),
    "token-mask-a-number": ("03_train", {"token_mask": 5}, "-p token_mask 5: 03_train expects a path or name"),
    "count-run-a-list": ("03_train", {"count_run": [1]}, "-p count_run [1]: 03_train expects a path or name"),
    "model-path-a-number": ("06_weight_analysis", {"model_path": 5}, "-p model_path 5: 06_weight_analysis expects a path or name"),
    "sample-size-negative": ("02_create_mask", {"sample_size": -1}, "-p sample_size -1: 02_create_mask expects a whole number >= 0"),
    "unknown-table": ("04_evaluate", {"tables": ["fp16"]}, "-p tables ['fp16']: 04_evaluate expects a list of distinct table names"),
    "run-dir": ("03_train", {"run_dir": "elsewhere"}, "-p run_dir 'elsewhere': `wldetect run` makes the run record itself"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PARAMETER_CASES))
def test_a_notebook_parameter_the_step_cannot_use_is_refused_in_one_line(case):
    from wldetect.workflow import notebooks

    notebook, parameters, message = PARAMETER_CASES[case]
    with pytest.raises(WLDetectError) as error:
        notebooks.check_parameters(notebook, parameters)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_wldetect_run_refuses_batch_size_0_before_any_run_record_exists(tmp_path):
    """`count-tokens --batch-size 0` was refused, `wldetect run 01 -p batch_size 0` exited 0 and recorded it."""
    runs = tmp_path / "runs"
    done = wldetect("run", "01_count_tokens", "-p", "batch_size", "0", env={"WLDETECT_RUNS_DIR": str(runs)})
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith("error: -p batch_size 0: 01_count_tokens expects a whole number >= 1")
    assert done.stderr.count(b"\n") == 1
    assert not runs.exists() or not any(runs.iterdir())


def _setup_cell(notebook: str) -> str:
    """The code of a step notebook's setup cell (the one calling notebook_run), without its line magics."""
    import nbformat

    book = nbformat.read(str(REPO / "notebooks" / f"{notebook}.ipynb"), as_version=4)
    cell = next(c.source for c in book.cells if c.cell_type == "code" and "notebook_run(" in c.source)
    return "\n".join(line for line in cell.splitlines() if not line.startswith("%"))


def _parameters_cell(notebook: str) -> dict:
    import nbformat

    book = nbformat.read(str(REPO / "notebooks" / f"{notebook}.ipynb"), as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in book.cells if "parameters" in c.metadata.get("tags", [])), namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def test_the_training_notebook_applies_and_records_epochs_and_refuses_0_before_a_record(tmp_path, monkeypatch):
    """03_train's setup cell as papermill runs it: `epochs 2` is the config's training.epochs and is in the
    manifest (it used to be left out); `epochs 0` (which used to train the config's epochs) is refused before
    any run record exists."""
    monkeypatch.chdir(REPO)  # notebook_run moves to the project root; restored after the test
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    namespace = {**_parameters_cell("03_train"), "epochs": 2, "overrides": {"training.seed": 7}}
    exec(_setup_cell("03_train"), namespace)
    manifest = namespace["run"].manifest()
    assert manifest["parameters"]["epochs"] == 2 and manifest["parameters"]["overrides"] == {"training.seed": 7}
    assert namespace["training_config"].training.epochs == 2 and namespace["training_config"].training.seed == 7
    namespace["run"].finish()

    before = sorted((tmp_path / "runs").iterdir())
    for bad in ({"epochs": 0}, {"epochs": -1}, {"token_mask": 5}, {"run_dir": 5}):
        namespace = {**_parameters_cell("03_train"), **bad}
        with pytest.raises(WLDetectError, match=f"-p {next(iter(bad))} "):
            exec(_setup_cell("03_train"), namespace)
        assert sorted((tmp_path / "runs").iterdir()) == before  # no record made


def test_the_mask_notebook_records_its_sample_size_and_refuses_a_negative_one_first(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    namespace = {**_parameters_cell("02_create_mask"), "sample_size": -1}
    cell = _setup_cell("02_create_mask").split("training_config =")[0]  # the record, not the counting
    with pytest.raises(WLDetectError, match="-p sample_size -1: 02_create_mask expects"):
        exec(cell, namespace)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    namespace = {**_parameters_cell("02_create_mask"), "sample_size": 0}
    exec(cell, namespace)
    assert namespace["run"].manifest()["parameters"]["sample_size"] == 0
    namespace["run"].finish()

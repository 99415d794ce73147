"""Run records: unique ids, complete manifests, failure marking, listing."""

import json

import pytest

from wldetect.errors import WLDetectError
from wldetect.workflow.runs import create_run, input_hash, list_runs, open_run, start_run


def test_run_directories_are_never_reused(tmp_path):
    first = create_run("demo", kind="03_train", parameters={"threshold": 10}, threshold=10, root=tmp_path)
    second = create_run("demo", kind="03_train", parameters={"threshold": 10}, threshold=10, root=tmp_path, run_id=first.run_id)
    assert first.path != second.path and second.run_id == f"{first.run_id}-2"
    assert first.run_id.endswith("-demo-t10") and first.run_id[:8].isdigit()


def test_manifest_records_code_environment_inputs_and_outcome(tmp_path):
    data = tmp_path / "counts.npy"
    data.write_bytes(b"12345")
    run = create_run("x", kind="01_count_tokens", parameters={"config": tmp_path / "c.yaml"}, root=tmp_path / "runs")
    run.record_input("token_counts", data)
    run.record_timing("count", 1.23456)
    run.finish({"accuracy": 0.9})
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["metrics"] == {"accuracy": 0.9}
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert manifest["packages"]["numpy"] and manifest["machine"]["cpu_count"] >= 1
    assert manifest["inputs"]["token_counts"]["sha256"] == "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"
    assert manifest["timings_s"] == {"count": 1.235}
    assert (run.path / "params.yaml").read_text() == f"config: {tmp_path / 'c.yaml'}\n"


def test_directory_hash_depends_on_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("1")
    before = input_hash(tmp_path / "a")
    (tmp_path / "a" / "x.txt").write_text("2")
    assert input_hash(tmp_path / "a") != before


def test_failed_runs_and_listing(tmp_path):
    ok = create_run("good", kind="03_train", parameters={}, threshold=0, root=tmp_path)
    ok.finish({"accuracy": 0.5, "f1_macro": 0.4})
    bad = create_run("bad", kind="03_train", parameters={}, threshold=5, root=tmp_path)
    bad.fail("RuntimeError: boom\nsecond line")
    none = create_run("none", kind="03_train", parameters={}, threshold=None, root=tmp_path)
    table = list_runs(tmp_path).set_index("run_id")
    assert table.loc[ok.run_id, "status"] == "completed" and table.loc[ok.run_id, "accuracy"] == 0.5
    assert table.loc[bad.run_id, "status"] == "failed"
    # thresholds are shown as the counts they are, also in a column that has a missing one
    assert table.loc[bad.run_id, "threshold"] == 5 and table.loc[ok.run_id, "threshold"] == 0
    assert table["threshold"].isna()[none.run_id]
    assert open_run(bad.path).manifest()["error"].startswith("RuntimeError: boom")


def test_start_run_reuses_a_given_directory(tmp_path):
    made = create_run("x", kind="03_train", parameters={"a": 1}, root=tmp_path)
    again = start_run("x", kind="03_train", parameters={"a": 1, "resolved": True}, threshold=3, run_dir=made.path)
    assert again.path == made.path and again.manifest()["parameters"]["resolved"] is True
    with pytest.raises(WLDetectError, match="not a run directory"):
        open_run(tmp_path / "nothing")


@pytest.mark.parametrize("status", ["completed", "failed", None])
def test_start_run_refuses_a_finished_run_directory_and_leaves_it_as_it_was(tmp_path, status):
    made = create_run("x", kind="03_train", parameters={"a": 1}, threshold=3, root=tmp_path)
    if status == "completed":
        made.finish({"accuracy": 0.5})
    elif status == "failed":
        made.fail("RuntimeError: boom")
    else:
        (made.path / "manifest.json").write_text("{damaged")
    before = {p.name: p.read_bytes() for p in made.path.iterdir()}
    expected = status or "unreadable"
    message = rf"^run_dir {made.path}: the run is {expected}.*, not running; .*never written"
    with pytest.raises(WLDetectError, match=message):
        start_run("x", kind="03_train", parameters={"a": 2}, threshold=5, run_dir=made.path)
    assert {p.name: p.read_bytes() for p in made.path.iterdir()} == before


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/python", "/venv/bin/papermill", "nb.ipynb", "reports/out", "-p", "threshold", "10"], "reports/out"),
        (["/venv/python", "-m", "papermill", "-p", "threshold", "10", "nb.ipynb", "o.json"], "o.json"),
        (["/venv/python", "/venv/bin/papermill", "nb.ipynb"], "-"),  # no OUT: papermill writes to stdout
        (["/venv/python", "-m", "ipykernel_launcher", "-f", "k.json"], None),  # JupyterLab's kernel
    ],
)
def test_papermill_out_is_read_with_papermills_own_argument_parser(argv, expected):
    from pathlib import Path

    from wldetect.workflow.runs import output_path_from_papermill_argv

    found = output_path_from_papermill_argv(argv)
    assert found == (str(Path(expected).resolve()) if expected not in (None, "-") else expected)


def test_inputs_name_the_run_that_wrote_them_and_lineage_walks_back_to_step_1(tmp_path):
    from typer.testing import CliRunner

    from wldetect.workflow.runs import lineage, lineage_text

    counted = create_run("demo", kind="01_count_tokens", parameters={}, root=tmp_path)
    (counted.path / "token_counts.npy").write_bytes(b"counts")
    (counted.path / "token_counts_token_ids").mkdir()
    (counted.path / "token_counts_token_ids" / "chunk_000000_ids.npy").write_bytes(b"ids")
    masked = create_run("demo-mask", kind="02_create_mask", parameters={}, root=tmp_path)
    masked.record_input("token_counts", counted.path / "token_counts.npy")
    (masked.path / "token_mask.npy").write_bytes(b"mask")
    trained = create_run("demo", kind="03_train", parameters={}, threshold=10, root=tmp_path)
    trained.record_input("token_ids", counted.path / "token_counts_token_ids")
    trained.record_input("token_mask", masked.path / "token_mask.npy")
    (trained.path / "own.npy").write_bytes(b"own")
    trained.record_input("own_file", trained.path / "own.npy")  # its own file names no producer
    elsewhere = tmp_path.parent / f"{tmp_path.name}-outside.npy"
    elsewhere.write_bytes(b"x")
    trained.record_input("outside", elsewhere)

    inputs = trained.manifest()["inputs"]
    assert inputs["token_ids"]["run"] == counted.run_id and inputs["token_mask"]["run"] == masked.run_id
    assert "run" not in inputs["own_file"] and "run" not in inputs["outside"]
    assert inputs["token_mask"]["sha256"] == input_hash(masked.path / "token_mask.npy")

    walked = [(depth, run_id) for depth, run_id, _ in lineage(trained.path)]
    assert walked == [(0, trained.run_id), (1, counted.run_id), (1, masked.run_id)]  # step 1 listed once
    text = lineage_text(trained.run_id, root=tmp_path)
    assert text.splitlines()[0] == f"{trained.run_id}  [03_train, running]"
    assert f"token_mask: {masked.path / 'token_mask.npy'}" in text and f"<- {masked.run_id}" in text
    assert f"    {masked.run_id}  [02_create_mask, running]" in text.splitlines()
    assert f"      token_counts: {counted.path / 'token_counts.npy'}" in "\n".join(text.splitlines())

    from wldetect.cli import app

    result = CliRunner().invoke(app, ["runs", "--lineage", str(trained.path)])
    assert result.exit_code == 0 and counted.run_id in result.output
    missing = CliRunner().invoke(app, ["runs", "--lineage", str(tmp_path / "nope")])
    assert missing.exit_code != 0


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`wldetect ARGS` through `cli.main`, in this process: (exit status, stdout, stderr)."""
    import sys

    from wldetect.cli import main

    monkeypatch.setattr(sys, "argv", ["wldetect", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    out = capsys.readouterr()
    return stopped.value.code, out.out, out.err


@pytest.mark.parametrize(
    "manifest",
    ['{"run_id": "x", "kind": "03_train", "status": "done", "parameters": null, "metrics": []}', "[1, 2]", "{not json"],
    ids=["null-fields", "a-list", "not-json"],
)
def test_a_damaged_manifest_is_listed_as_damaged_not_a_crash(tmp_path, monkeypatch, capsys, manifest):
    good = create_run("good", kind="03_train", parameters={"config": "c.yaml"}, threshold=0, root=tmp_path)
    good.finish({"accuracy": 0.5})
    damaged = tmp_path / "20990101T000000Z-damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text(manifest)

    table = list_runs(tmp_path).set_index("run_id")
    assert table.loc[good.run_id, "status"] == "completed" and table.loc[good.run_id, "config"] == "c.yaml"
    expected = "done" if manifest.startswith('{"') else "damaged"
    assert table.loc[damaged.name if expected == "damaged" else "x", "status"] == expected

    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path))
    status, out, err = _cli(monkeypatch, capsys, "runs")
    assert status == 0 and not err and good.run_id in out


@pytest.mark.parametrize("manifest", ["{not json", "[1, 2]", '"text"'], ids=["not-json", "a-list", "a-string"])
def test_lineage_through_a_damaged_manifest_is_one_line_naming_it(tmp_path, monkeypatch, capsys, manifest):
    counted = create_run("demo", kind="01_count_tokens", parameters={}, root=tmp_path)
    (counted.path / "token_counts.npy").write_bytes(b"counts")
    trained = create_run("demo", kind="03_train", parameters={}, threshold=0, root=tmp_path)
    trained.record_input("token_counts", counted.path / "token_counts.npy")
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path))

    counted.manifest_path.write_text(manifest)  # the producer's manifest is damaged
    status, out, err = _cli(monkeypatch, capsys, "runs", "--lineage", trained.run_id)
    assert status == 2 and not out
    assert err.count("\n") == 1 and err.startswith(f"error: {counted.manifest_path}: ")
    with pytest.raises(WLDetectError, match="expected a JSON object"):
        counted.manifest()

    trained.manifest_path.write_text(manifest)  # the run's own
    status, out, err = _cli(monkeypatch, capsys, "runs", "--lineage", str(trained.path))
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"error: {trained.manifest_path}: ")


def test_lineage_skips_input_entries_of_the_wrong_shape(tmp_path):
    from wldetect.workflow.runs import lineage_text

    run = create_run("demo", kind="03_train", parameters={}, root=tmp_path)
    manifest = run.manifest()
    manifest["inputs"] = {"odd": "a string", "none": None, "file": {"path": "x.npy", "sha256": 5}}
    run.manifest_path.write_text(json.dumps(manifest))
    text = lineage_text(run.path)
    assert text.splitlines()[0] == f"{run.run_id}  [03_train, running]"
    assert "  odd: a string" in text and "  file: x.npy  sha256 5" in text


# ------------------------------------------------------------------ runs whose processes were killed


_OWNER = r"""
import sys, time
from wldetect.io import directory_lock
from wldetect.workflow.runs import create_run

run = create_run("killed", kind="03_train", parameters={"threshold": 0}, root=sys.argv[1])
staging = run.path / ".artifacts.staging" / "checkpoints"
staging.mkdir(parents=True)
(staging / "checkpoint_step_00000010.pt").write_bytes(b"half a training run")
with directory_lock(run.artifacts_dir, "model directory"):
    print(run.path, flush=True)
    time.sleep(600)
"""


def test_a_sigkilled_run_is_interrupted_its_leftovers_removed_and_the_next_run_proceeds(tmp_path, monkeypatch, capsys):
    """A process that makes a run record and holds its artifacts lock (as training does) is SIGKILLed: the
    record then lists as interrupted, `wldetect runs` marks it so and removes `.artifacts.staging/` and
    `.artifacts.lock` in one line, the record is never reopened, and the next run is made as usual."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_path = Path(owner.stdout.readline().strip())
        assert (run_path.parent / ".artifacts.lock").is_file() is False  # the lock is the record's own
        assert (run_path / ".artifacts.lock").is_file() and (run_path / ".artifacts.staging").is_dir()
        manifest = open_run(run_path).manifest()
        assert [(p["role"], p["pid"]) for p in manifest["processes"]] == [("created", owner.pid)]
        assert list_runs(root).set_index("run_id").loc[run_path.name, "status"] == "running"  # alive: running
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        owner.stdout.close()

    assert list_runs(root).set_index("run_id").loc[run_path.name, "status"] == "interrupted"
    with pytest.raises(WLDetectError, match="the run is interrupted, not running"):  # not yet marked, not reopened
        start_run("again", kind="03_train", parameters={}, run_dir=run_path)
    assert open_run(run_path).manifest()["status"] == "running"
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(root))
    status, out, err = _cli(monkeypatch, capsys, "runs")
    assert status == 0 and not err
    reaped = [line for line in out.splitlines() if line.startswith(f"Run {run_path.name} was interrupted")]
    assert len(reaped) == 1 and ".artifacts.staging/" in reaped[0] and ".artifacts.lock" in reaped[0]
    assert "interrupted" in out.splitlines()[-1]  # the table row
    assert not (run_path / ".artifacts.staging").exists() and not (run_path / ".artifacts.lock").exists()
    manifest = open_run(run_path).manifest()
    assert manifest["status"] == "interrupted" and f"pid {owner.pid}" in manifest["error"]
    with pytest.raises(WLDetectError, match="interrupted, not running"):
        start_run("again", kind="03_train", parameters={}, run_dir=run_path)

    following = create_run("killed", kind="03_train", parameters={"threshold": 0}, root=root)
    assert following.manifest()["status"] == "running" and following.status() == "running"
    assert capsys.readouterr().out == ""  # reaped once: nothing more to say


def test_a_run_whose_process_dies_while_runs_are_listed_is_marked_as_it_is_listed(tmp_path, monkeypatch, capsys):
    """The process of a run ends after `wldetect runs` has reaped and before it lists (a kernel exiting on its
    own, seen in CI): the row says interrupted, and so does the manifest once the command returns."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import wldetect.workflow.runs as runs_module

    root = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_path = Path(owner.stdout.readline().strip())
    finally:
        owner.stdout.close()
    listing = runs_module.list_runs

    def dies_before_listing(*args, **kwargs):
        if owner.poll() is None:
            owner.send_signal(signal.SIGKILL)
            owner.wait(timeout=30)
        return listing(*args, **kwargs)

    monkeypatch.setattr(runs_module, "list_runs", dies_before_listing)
    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(root))
    try:
        status, out, err = _cli(monkeypatch, capsys, "runs")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)
    assert status == 0 and not err
    row = [line for line in out.splitlines() if run_path.name in line and "was interrupted" not in line]
    assert len(row) == 1 and "interrupted" in row[0], out
    assert open_run(run_path).manifest()["status"] == "interrupted"
    assert f"Run {run_path.name} was interrupted" in out


def test_a_reused_pid_or_a_zombie_is_not_the_runs_process_and_another_hosts_is_left_alone(tmp_path):
    import os
    import socket

    from wldetect.workflow.runs import process_alive, run_status, this_process

    me = this_process("created")
    assert process_alive(me) is True and me["start"]
    assert process_alive({**me, "start": me["start"] + "0"}) is False  # same pid, another process's start
    assert process_alive({**me, "host": socket.gethostname() + "-other"}) is None  # cannot be told here
    assert process_alive({**me, "pid": "x"}) is None
    manifest = {"status": "running", "processes": [{**me, "start": "linux:old-boot:1"}]}
    assert run_status(manifest) == "interrupted"
    manifest["processes"].append({**me, "host": "elsewhere"})  # a Ray task on another node may still run
    assert run_status(manifest) == "running"
    assert run_status({"status": "running"}) == "running"  # an older record names no process: as recorded
    assert run_status({"status": "running", "processes": [me]}) == "running"
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:  # exited but not yet waited for: a zombie never finishes a run
        import time

        entry = {"role": "kernel", "pid": child, "host": socket.gethostname(), "start": None}
        for _ in range(100):
            if process_alive(entry) is False:
                break
            time.sleep(0.02)
        assert process_alive(entry) is False
    finally:
        os.waitpid(child, 0)


def test_a_sweep_report_never_counts_an_interrupted_run_as_done(tmp_path):
    from wldetect.workflow.notebooks import sweep_report

    baseline = create_run("sweep", kind="03_train", parameters={"threshold": 0}, threshold=0, root=tmp_path)
    manifest = baseline.manifest()
    dead = {**manifest["processes"][0], "start": "linux:another-boot:1"}
    baseline._update(processes=[dead])
    assert baseline.manifest()["status"] == "running" and baseline.status() == "interrupted"
    with pytest.raises(WLDetectError, match=f"baseline run {baseline.run_id} .* is interrupted, so no comparison"):
        sweep_report([baseline], "sweep", runs_root=tmp_path)


def test_a_kernel_that_reopens_a_run_records_its_own_process(tmp_path):
    """`wldetect run` makes the record, the notebook's kernel (another process) reopens it: both are named,
    and the run lives while either does."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    run = create_run("x", kind="01_count_tokens", parameters={}, root=tmp_path)
    kernel = (
        "import sys; from wldetect.workflow.runs import start_run; "
        "start_run('x', kind='01_count_tokens', parameters={'config': 'c.yaml'}, run_dir=sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-c", kernel, str(run.path)], check=True, env=env)
    processes = run.manifest()["processes"]
    assert [p["role"] for p in processes] == ["created", "kernel"] and processes[0]["pid"] == os.getpid()
    assert run.status() == "running"  # the kernel has exited, this process (which made it) lives

"""Executors without a cluster: GPU slots of a local sweep, kernel environments, Ray kept optional."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from wldetect.errors import WLDetectError
from wldetect.workflow import executors, notebooks

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "environ, count, expected",
    [
        ({}, 0, []),
        ({}, 3, ["0", "1", "2"]),
        ({"CUDA_VISIBLE_DEVICES": "2,5"}, 8, ["2", "5"]),
        ({"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, 8, ["GPU-aa", "GPU-bb"]),
        ({"CUDA_VISIBLE_DEVICES": ""}, 8, []),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 8, []),
        ({"CUDA_VISIBLE_DEVICES": "1,-1,3"}, 8, ["1"]),  # CUDA ignores everything after an invalid entry
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(environ, count, expected):
    assert executors.visible_gpus(environ, count) == expected


def test_each_concurrent_run_gets_its_own_gpu():
    slots = executors.local_slots(4, 6, ["0", "1", "2", "3"], cpu_count=16)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "2", "3"]
    assert {s["OMP_NUM_THREADS"] for s in slots} == {"4"}


def test_more_jobs_than_gpus_waits_for_a_free_gpu_unless_sharing_is_asked():
    assert [s["CUDA_VISIBLE_DEVICES"] for s in executors.local_slots(8, 6, ["0", "1"], cpu_count=8)] == ["0", "1"]
    shared = executors.local_slots(8, 6, ["0", "1"], runs_per_gpu=2, cpu_count=8)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in shared] == ["0", "1", "0", "1"]  # a GPU's second run only when all have one
    assert executors.local_slots(8, 3, ["0", "1"], runs_per_gpu=4, cpu_count=8)[2]["CUDA_VISIBLE_DEVICES"] == "0"
    with pytest.raises(WLDetectError, match="runs per GPU"):
        executors.local_slots(2, 2, ["0"], runs_per_gpu=0)


def test_on_cpu_the_threads_are_split_as_before():
    assert executors.local_slots(1, 5, [], cpu_count=8) == [{}]  # one run: the kernel's defaults, as before
    assert executors.local_slots(3, 2, [], cpu_count=8) == [{"OMP_NUM_THREADS": "4"}] * 2  # jobs <= runs
    assert executors.local_slots(2, 4, [], cpu_count=1) == [{"OMP_NUM_THREADS": "1"}] * 2
    assert executors.local_slots(2, 4, [], cpu_count=8, environ={"OMP_NUM_THREADS": "3"}) == [{"OMP_NUM_THREADS": "3"}] * 2


def test_ray_tasks_ask_for_a_gpu_where_training_uses_cuda():
    assert executors.gpus_per_task("cuda", 8) == 1
    assert executors.gpus_per_task("auto", 2) == 1 and executors.gpus_per_task("auto", 0) == 0
    assert executors.gpus_per_task("cpu", 8) == 0
    with pytest.raises(WLDetectError, match="no GPUs"):
        executors.gpus_per_task("cuda", 0)


def test_each_kernel_gets_its_own_environment(tmp_path):
    """Two kernels started at once from two threads each see their own CUDA_VISIBLE_DEVICES; os.environ is untouched."""
    import papermill

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ.get('OMP_NUM_THREADS'))")]
    book.metadata["kernelspec"] = {"name": notebooks.KERNEL, "language": "python", "display_name": "Python 3"}
    source = tmp_path / "env.ipynb"
    nbformat.write(book, str(source))
    before = dict(__import__("os").environ)

    def execute(device: str) -> None:
        papermill.execute_notebook(
            str(source), str(tmp_path / f"out{device}.ipynb"), kernel_name=notebooks.KERNEL, progress_bar=False,
            kernel_manager_class=notebooks.kernel_manager_class({"CUDA_VISIBLE_DEVICES": device, "OMP_NUM_THREADS": "1"}),
        )  # fmt: skip

    threads = [threading.Thread(target=execute, args=(d,)) for d in ("0", "1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for device in ("0", "1"):
        printed = nbformat.read(str(tmp_path / f"out{device}.ipynb"), as_version=4).cells[0].outputs[0]["text"]
        assert printed.strip() == f"{device} 1"
    assert dict(__import__("os").environ) == before


def test_the_kernels_own_output_goes_to_the_log_and_the_cells_to_the_notebook(tmp_path, capfd):
    """What the kernel process writes to its file descriptors (ipykernel's log, a crash report) goes to the
    run record's kernel log, not the console; what a cell prints stays in the executed notebook."""
    import papermill

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("import os\nos.write(2, b'kernel-fd-marker\\n')\nprint('cell-output')")]
    book.metadata["kernelspec"] = {"name": notebooks.KERNEL, "language": "python", "display_name": "Python 3"}
    source = tmp_path / "fd.ipynb"
    nbformat.write(book, str(source))
    with open(tmp_path / "kernel.log", "ab") as log:
        papermill.execute_notebook(
            str(source), str(tmp_path / "out.ipynb"), kernel_name=notebooks.KERNEL, progress_bar=False,
            kernel_manager_class=notebooks.kernel_manager_class(log=log),
        )  # fmt: skip
    logged = (tmp_path / "kernel.log").read_text()
    assert "kernel-fd-marker" in logged and "cell-output" not in logged
    assert "kernel-fd-marker" not in capfd.readouterr().err
    outputs = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4).cells[0].outputs
    assert [o.get("text", "").strip() for o in outputs if o.get("name") == "stdout"] == ["cell-output"]


def test_local_sweep_runs_record_their_gpu(monkeypatch, tmp_path):
    """With two (pretend) GPUs and --jobs 2, the two runs' records name different GPUs."""
    monkeypatch.setattr(notebooks, "detect_gpus", lambda: ["0", "1"])
    calls = []

    def fake_execute(run, name, parameters, *, raise_on_failure, env):
        calls.append(env.get("CUDA_VISIBLE_DEVICES"))
        run.finish()
        return run

    monkeypatch.setattr(notebooks, "execute_into_run", fake_execute)  # the kernel is tested above; this is the dealing
    monkeypatch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
    runs = notebooks._local_run_notebooks(
        "03_train", [{"threshold": t, "name": "g"} for t in (0, 1)], run_name="g", runs_root=tmp_path, jobs=2, device="auto"
    )
    assert sorted(calls[:2]) == ["0", "1"]
    assert sorted(r.manifest()["executor"]["cuda_visible_devices"] for r in runs) == ["0", "1"]
    none = notebooks._local_run_notebooks(
        "03_train", [{"threshold": 0, "name": "c"}], run_name="c", runs_root=tmp_path, jobs=2, device="cpu"
    )
    assert none[0].manifest()["executor"] == {"executor": "local"}


def test_without_ray_the_ray_executor_is_a_one_line_error_naming_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError, as where it is not installed
        "from wldetect.cli import main\n"
        "sys.argv = ['wldetect', 'sweep', '--config', 'params/training/demo.yaml', '--thresholds', '0,5', '--executor', 'ray']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: " + executors.RAY_INSTALL_HINT
    assert "pip install -e '.[ray]'" in done.stderr


def test_ray_is_not_imported_until_an_executor_needs_it():
    code = (
        "import sys, wldetect.cli, wldetect.workflow.notebooks, wldetect.steps.counting, wldetect.workflow.executors, wldetect.workflow.runs\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == []


def test_an_address_where_no_ray_cluster_answers_is_a_quick_one_line_error():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WLDetectError, match=rf"no Ray cluster answers at 127.0.0.1:{port} .*ray start --head"):
        executors._check_reachable(f"127.0.0.1:{port}")
    executors._check_reachable("auto")  # resolved by Ray itself

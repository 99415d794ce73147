"""Run records: every notebook execution leaves `runs/<run-id>/` behind, complete enough to reproduce it.

A run directory holds the executed notebook(s) and their HTML renderings, `params.yaml` (the resolved
parameters), `manifest.json` (status, git commit and dirty flag, package versions, input hashes, timings,
machine and device) and, for training runs, `artifacts/`. The layout is described in runs/README.md.

Runs are created with an exclusive `mkdir`, so two processes (a sweep with --jobs) never share or overwrite
one; a run is `running` until `finish()` marks it `completed` or `failed`.

A process killed with SIGKILL (or a machine that lost power) never gets to `finish()`. So the manifest's
`processes` names every process that works on the run (the one that made the record, the notebook's kernel,
a Ray task): pid, host and an identity of the process's start that a reused pid does not share. A `running`
run none of whose processes lives any more is `interrupted`: `list_runs` shows it so, and the next command
that makes a run record (or `wldetect runs`) marks it so and removes its leftover staging folders and lock
files (`reap_interrupted`), saying so in one line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from wldetect.errors import WLDetectError
from wldetect.io import lock_holder, write_text_atomic
from wldetect.records import MANIFEST, owning_run, run_record_status

PARAMS = "params.yaml"
ARTIFACTS = "artifacts"
_PACKAGES = [
    "wldetect", "torch", "numpy", "tokenizers", "safetensors", "ml_dtypes", "datasets", "huggingface_hub",
    "pandas", "scikit-learn", "statsmodels", "scipy", "matplotlib", "seaborn", "papermill", "wordfreq",
]  # fmt: skip
_FULL_HASH_LIMIT = 256 << 20  # larger files (Gemma3's 5.6 GB embeddings, corpus shards) get a sampled hash
_SAMPLE_BYTES = 4 << 20


def project_root() -> Path:
    """The repository the workflow runs in: $WLDETECT_PROJECT_ROOT, else the nearest ancestor of the
    working directory holding `params/` (so notebooks work from notebooks/ and from the root alike)."""
    if os.environ.get("WLDETECT_PROJECT_ROOT"):
        return Path(os.environ["WLDETECT_PROJECT_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for candidate in [here, *here.parents]:
        if (candidate / "params").is_dir() and (candidate / "notebooks").is_dir():
            return candidate
    return here


def runs_dir() -> Path:
    return Path(os.environ.get("WLDETECT_RUNS_DIR") or project_root() / "runs")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_run_id(name: str, threshold: int | str | None = None, seed: int | None = None) -> str:
    """Readable and sortable: `20261121T101500Z-demo-t10`, with a chosen training seed `...-t10-s1`; a share
    threshold reads as asked, `...-demo-t0.0025pct` (the count it resolves to is known only once step 1's counts
    are read: the manifest has both)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    run_id = f"{stamp}-{slug}"
    if threshold is not None:
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(threshold).strip().replace("%", "pct")).strip("-")
        run_id += f"-t{label}" if label else ""
    return run_id + (f"-s{seed}" if seed is not None else "")


def threshold_fields(threshold: Any) -> dict[str, Any]:
    """A manifest's `threshold` (the count) and `threshold_share` (the share of training tokens it was asked as,
    `"0.0025%"`, or None). A share's count is unknown until the step resolves it on step 1's counts
    (`Run.record_threshold`); until then `threshold` is None."""
    if isinstance(threshold, str) and threshold.strip().endswith("%"):
        return {"threshold": None, "threshold_share": threshold.strip()}
    return {"threshold": threshold, "threshold_share": None}


def file_hash(path: Path) -> str:
    """sha256 of the file; beyond 256 MiB (embedding caches, corpus shards) of its size and its first and
    last 4 MiB, marked `sampled:`, so a manifest never spends minutes re-reading a 20 GB corpus."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode())
        digest.update(handle.read(_SAMPLE_BYTES))
        handle.seek(size - _SAMPLE_BYTES)
        digest.update(handle.read(_SAMPLE_BYTES))
    return "sampled:" + digest.hexdigest()


def input_hash(path: Path) -> str:
    """Hash of a file, or of a directory's files (names and contents), for the manifest. A directory beyond
    256 MiB in all (OpenLID's token ids: thousands of chunk files) is hashed by each file's name, size and
    first 64 KiB, marked `sampled:`."""
    path = Path(path)
    if path.is_file():
        return file_hash(path)
    children = sorted(p for p in path.rglob("*") if p.is_file())
    sampled = sum(child.stat().st_size for child in children) > _FULL_HASH_LIMIT
    digest = hashlib.sha256()
    for child in children:
        digest.update(str(child.relative_to(path)).encode())
        if sampled:
            digest.update(str(child.stat().st_size).encode())
            with open(child, "rb") as handle:
                digest.update(handle.read(1 << 16))
        else:
            digest.update(file_hash(child).encode())
    return ("sampled:" if sampled else "") + digest.hexdigest()


def git_state(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def environment_facts() -> dict[str, Any]:
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    device = {"cuda_available": False}
    if "torch" in sys.modules:  # only describe the accelerator if this process uses torch at all
        import torch

        device = {"cuda_available": torch.cuda.is_available(), "torch_threads": torch.get_num_threads()}
        if torch.cuda.is_available():
            device["cuda_device"] = torch.cuda.get_device_name(0)
    return {
        "packages": packages,
        "machine": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "device": device,
    }


def papermill_output_path() -> str | None:
    """Where papermill is writing this notebook, when the kernel was started by a `papermill IN OUT` command.

    Papermill does not tell the kernel its output path, but the kernel's parent process is papermill: its
    command line names it. Returns None when that cannot be known (JupyterLab, a non-Linux system).
    """
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return output_path_from_papermill_argv([a.decode(errors="replace") for a in argv if a])


def output_path_from_papermill_argv(argv: list[str]) -> str | None:
    """OUT of a papermill command line, parsed by papermill's own command-line definition (any file name)."""
    for index, arg in enumerate(argv[:4]):
        if Path(arg).name == "papermill" or arg.endswith("papermill/__main__.py"):
            arguments = argv[index + 1 :]
            break
    else:
        return None
    from papermill.cli import papermill as papermill_command

    try:
        context = papermill_command.make_context("papermill", list(arguments), resilient_parsing=True)
    except Exception:
        return None
    output = context.params.get("output_path")
    if not output:
        return "-" if context.params.get("notebook_path") else None
    return output if output == "-" else str(Path(output).resolve())


def read_manifest(path: Path) -> dict[str, Any]:
    """A run's manifest as a mapping. A damaged one (not UTF-8 JSON, or JSON that is no object) is a one-line
    error naming the file: every reader (`wldetect runs --lineage`, a sweep reading its runs' status) then
    stops at the file to repair instead of a JSONDecodeError or AttributeError far from it."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        found = f"invalid JSON ({err})" if isinstance(err, json.JSONDecodeError) else "bytes that are not UTF-8"
        raise WLDetectError(f"{path}: damaged run manifest: expected a JSON object, found {found}") from None
    if not isinstance(manifest, dict):
        found = f"a JSON {_json_type(manifest)}"
        raise WLDetectError(f"{path}: damaged run manifest: expected a JSON object, found {found}")
    return manifest


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# ----------------------------------------------------------------------------- which process owns a run


def process_start(pid: int) -> str | None:
    """An identity of the start of process `pid` that a later process given the same pid does not share:
    on Linux, the boot's id and the start time in clock ticks after boot (`/proc`, exact and cheap); elsewhere
    psutil's creation time where psutil is installed (a Jupyter dependency); None where neither can say."""
    try:
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        return f"linux:{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}:{ticks}"
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return f"psutil:{psutil.Process(pid).create_time():.2f}"
    except Exception:  # not installed, no such process, access denied
        return None


def this_process(role: str) -> dict[str, Any]:
    """The manifest's entry for this process working on a run (`role`: created, kernel, ray task)."""
    pid = os.getpid()
    return {"role": role, "pid": pid, "host": socket.gethostname(), "start": process_start(pid)}


def process_alive(entry: Any) -> bool | None:
    """Whether the process of a manifest's `processes` entry still runs: True, False (gone, a zombie, or its
    pid now another process's), or None where this machine cannot tell (another host, a malformed entry)."""
    if not isinstance(entry, dict) or entry.get("host") != socket.gethostname():
        return None
    pid = entry.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except (OverflowError, ValueError):
        return None
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False  # killed, not yet reaped by its parent: it will never write again
    except (OSError, IndexError):
        pass
    recorded = entry.get("start")
    if recorded is None:
        return True
    current = process_start(pid)
    return current is None or current == recorded


def run_status(manifest: dict[str, Any]) -> str | None:
    """A run's status as it is: the manifest's, except that a `running` run whose every recorded process is
    gone (on this host) is `interrupted`. A run whose processes cannot be checked here (none recorded, by an
    older version; another host) stays as recorded."""
    status = manifest.get("status")
    if status != "running":
        return status
    processes = manifest.get("processes")
    if not isinstance(processes, list) or not processes:
        return status
    return "interrupted" if all(process_alive(p) is False for p in processes) else status


def _leftovers(run_path: Path) -> list[Path]:
    """What an interrupted run's writers leave in its record: staging folders (`.artifacts.staging`,
    `.staging-<pid>`) and lock files (`.artifacts.lock`, `.wldetect-outputs.lock`) whose holder is gone. A
    lock of a live process, or of another host, is kept."""
    found = []
    for directory in (run_path, run_path / ARTIFACTS):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            name = entry.name
            if entry.is_dir() and (name.startswith(".staging-") or (name.startswith(".") and name.endswith(".staging"))):
                found.append(entry)
            elif entry.is_file() and name.startswith(".") and name.endswith(".lock") and lock_holder(entry) is None:
                found.append(entry)
    return found


def reap_interrupted(root: Path | None = None, say=print) -> list[Run]:
    """Mark every `running` run under `root` whose processes are all gone (`run_status`) as `interrupted` and
    remove its leftover staging folders and stale locks; one line each through `say`. Returns those runs.

    Called by `create_run` (any new run: `wldetect run`, a sweep, a notebook) and `wldetect runs`, so a run
    killed with SIGKILL is never listed as running, compared as done or reopened, and a rerun starts clean."""
    reaped = []
    for run_path, manifest in _manifests(Path(root) if root else runs_dir()):
        if manifest is None or run_status(manifest) != "interrupted":
            continue
        run = Run(run_path)
        gone = ", ".join(
            f"{p.get('role', 'process')} pid {p.get('pid')}" for p in manifest["processes"] if isinstance(p, dict)
        )
        try:
            if run_record_status(run.manifest_path) != "running":  # another command reaped it meanwhile
                continue
            run._update(  # no `finished` or duration: when it stopped is not known, only when it was found
                status="interrupted",
                error=f"interrupted: its processes ended without finishing it ({gone})",
                interrupted_found=utc_now(),
            )
            removed = []
            for leftover in _leftovers(run_path):
                name = str(leftover.relative_to(run_path))
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                    name += "/"
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(name)
        except OSError as err:  # a read-only runs directory: still listed as interrupted, nothing changed
            say(f"Run {run.run_id} was interrupted ({gone} gone); could not mark it: {err}")
            continue
        cleaned = f"; removed {', '.join(removed)}" if removed else ""
        say(f"Run {run.run_id} was interrupted ({gone} gone): marked interrupted{cleaned}")
        reaped.append(run)
    return reaped


def _mapping(value: Any) -> dict[str, Any]:
    """A manifest field that should be a mapping (`parameters`, `metrics`, `inputs`, an input entry), or {}
    where a damaged or hand-edited manifest holds something else: listing runs must not stop at one."""
    return value if isinstance(value, dict) else {}


@dataclass
class Run:
    """One run record directory and its manifest."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def artifacts_dir(self) -> Path:
        return self.path / ARTIFACTS

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.manifest_path)

    def status(self) -> str | None:
        """`running`, `completed`, `failed`, or `interrupted` (see `run_status`)."""
        return run_status(self.manifest())

    def record_process(self, role: str) -> None:
        """Add this process to the manifest's `processes` (see the module docstring), once."""
        entry = this_process(role)
        processes = [p for p in self.manifest().get("processes") or [] if isinstance(p, dict)]
        if not any(p.get("pid") == entry["pid"] and p.get("host") == entry["host"] for p in processes):
            self._update(processes=[*processes, entry])

    def _update(self, **fields: Any) -> dict[str, Any]:
        manifest = self.manifest()
        manifest.update(fields)
        write_text_atomic(self.manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest

    def record_input(self, name: str, path: str | Path | dict[str, Any] | None) -> None:
        """Hash an input (counts, token ids, mask, model, data, embeddings) into the manifest, with the run
        record that wrote it (`run`: its id, when it is another run's file): the lineage `wldetect runs
        --lineage` walks. A mapping is an input that is no file, recorded as given (a hub dataset: its id and
        split identify it, see `wldetect.workflow.cells.training_inputs`)."""
        if path is None:
            return
        inputs = self.manifest().get("inputs", {})
        if isinstance(path, dict):
            inputs[name] = _plain(path)
            self._update(inputs=inputs)
            return
        path = Path(path)
        entry: dict[str, Any] = {"path": str(path), "sha256": input_hash(path) if path.exists() else None}
        producer = owning_run(path)
        if producer is not None and producer.resolve() != self.path.resolve():
            entry["run"] = producer.name
            entry["run_path"] = str(producer)
        inputs[name] = entry
        self._update(inputs=inputs)

    def record_executor(self, facts: dict[str, Any], machine: bool = False) -> None:
        """Where the run executed (`executor`: local or ray, node, GPU); with `machine`, the machine facts
        are re-taken here, in the process that runs it (a Ray worker's node, not the driver's)."""
        fields: dict[str, Any] = {"executor": _plain(facts)}
        if machine:
            fields["machine"] = environment_facts()["machine"]
        self._update(**fields)
        if machine:
            self.record_process("ray task")

    def record_threshold(self, count: int, share: str | None = None) -> None:
        """The threshold a step resolved (`masking.resolve_threshold`): the count, and the share it was asked as."""
        self._update(threshold=int(count), threshold_share=share)

    def record_timing(self, step: str, seconds: float) -> None:
        timings = self.manifest().get("timings_s", {})
        timings[step] = round(seconds, 3)
        self._update(timings_s=timings)

    def record_notebook(self, notebook: Path, html: Path | None = None) -> None:
        notebooks = self.manifest().get("notebooks", [])
        entry = {"notebook": str(notebook), "html": str(html) if html else None}
        if entry not in notebooks:
            notebooks.append(entry)
        self._update(notebooks=notebooks)

    def finish(self, metrics: dict[str, Any] | None = None, status: str = "completed", error: str | None = None) -> None:
        manifest = self.manifest()
        started = manifest.get("started_unix", time.time())
        fields: dict[str, Any] = {
            "status": status,
            "finished": utc_now(),
            "duration_s": round(time.time() - started, 2),
            "metrics": {**manifest.get("metrics", {}), **(metrics or {})},
        }
        if error:
            fields["error"] = error
        self._update(**fields)

    def fail(self, error: str) -> None:
        self.finish(status="failed", error=error)

    def close(
        self,
        metrics: dict[str, Any] | None = None,
        *,
        inputs: dict[str, str | Path | dict[str, Any] | None] | None = None,
        seed: int | None = None,
    ) -> None:
        """A notebook's closing call: hash what the step read into the manifest, mark the run completed with
        its `metrics`, and print one line. `inputs` names the files or directories the step read (None:
        skipped; a mapping: an input that is no file), in the order the manifest lists them; the notebook says
        what they were (`wldetect.workflow.cells.training_inputs` for the training data and embeddings), so a
        run record never loads a model or a dataset to find out. `seed`: the training seed the run used (a
        training run's config seed, chosen or not), so a comparison can pair runs by seed from the manifest
        alone."""
        if seed is not None:
            self._update(seed=seed)
        for name, path in (inputs or {}).items():
            self.record_input(name, path)
        self.finish(metrics)
        print(f"Run {self.run_id} completed: {self.path}")


def create_run(
    name: str,
    *,
    kind: str,
    parameters: dict[str, Any],
    threshold: int | str | None = None,
    root: Path | None = None,
    run_id: str | None = None,
    seed: int | None = None,
) -> Run:
    """Make a new run directory (never reusing one) with its resolved parameters and an initial manifest that
    names this process as its owner; runs of dead processes under `root` are reaped first (`reap_interrupted`).

    `seed`: a training seed chosen for this run (`-p seed`, a sweep's `--seeds`): in the run id and manifest."""
    root = Path(root) if root else runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    reap_interrupted(root)
    base = run_id or make_run_id(name, threshold, seed)
    for attempt in range(1000):
        path = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise WLDetectError(f"could not create a new run directory under {root}")
    run = Run(path)
    write_text_atomic(path / PARAMS, yaml.safe_dump(_plain(parameters), sort_keys=False))
    manifest = {
        "run_id": run.run_id,
        "kind": kind,
        "name": name,
        **threshold_fields(threshold),
        **({"seed": seed} if seed is not None else {}),
        "status": "running",
        "started": utc_now(),
        "started_unix": time.time(),
        "processes": [this_process("created")],
        "parameters": _plain(parameters),
        "git": git_state(project_root()),
        **environment_facts(),
        "papermill_output": papermill_output_path(),
        "inputs": {},
        "timings_s": {},
        "notebooks": [],
        "metrics": {},
    }
    write_text_atomic(run.manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return run


def start_run(
    name: str,
    *,
    kind: str,
    parameters: dict[str, Any],
    threshold: int | str | None = None,
    run_dir: str | Path | None = None,
    seed: int | None = None,
) -> Run:
    """What a notebook calls first: reuse the run `wldetect run` made for it, or make its own (raw papermill,
    JupyterLab). Inside IPython, a cell that raises marks the run failed, so a crash is never shown as done.

    A given `run_dir` must be `running` (`wldetect run`, `sweep` and `demo` make it so, just before they
    execute the notebook): a finished record (completed or failed) keeps what its own execution wrote, and a
    later `papermill ... -p run_dir runs/<id>` is refused before its manifest or params.yaml is touched."""
    if run_dir:
        run = open_run(run_dir)
        _refuse_finished(run)
        run._update(parameters=_plain(parameters), **threshold_fields(threshold), **({"seed": seed} if seed is not None else {}))
        run.record_process("kernel")
        write_text_atomic(run.path / PARAMS, yaml.safe_dump(_plain(parameters), sort_keys=False))
    else:
        run = create_run(name, kind=kind, parameters=parameters, threshold=threshold, seed=seed)
    _mark_failed_on_error(run)
    return run


def _refuse_finished(run: Run) -> None:
    """A run record that is not `running` (or whose manifest cannot be read) is not reopened (`start_run`);
    nor is an interrupted one, whose processes are gone though no command has marked it yet."""
    status = run_record_status(run.manifest_path)
    if status == "running":
        try:
            status = run_status(run.manifest())
        except WLDetectError:
            status = None
    if status != "running":
        raise WLDetectError(
            f"run_dir {run.path}: the run is {status or 'unreadable (damaged manifest.json)'}, not running; a finished "
            "run record is never written into again: leave out run_dir (a new record is made) or use `wldetect run`"
        )


def _mark_failed_on_error(run: Run) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def after_cell(result) -> None:
        error = result.error_in_exec or result.error_before_exec
        if error is not None and run.manifest().get("status") == "running":
            run.fail(f"{type(error).__name__}: {error}".splitlines()[0])

    shell.events.register("post_run_cell", after_cell)


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise WLDetectError(f"{path}: not a run directory (no {MANIFEST})")
    return Run(path)


def _manifests(root: Path):
    """(run directory, manifest) of every run under `root`, newest first (run ids sort by time); the manifest
    is None where it is damaged (manifests are replaced atomically, so that is never a half-written one)."""
    for manifest_path in sorted(root.glob(f"*/{MANIFEST}"), reverse=True):
        try:
            yield manifest_path.parent, read_manifest(manifest_path)
        except WLDetectError:
            yield manifest_path.parent, None


def latest_runs(kind: str, n: int = 1, root: Path | None = None) -> list[Run]:
    """The `n` most recent completed runs of a step (`03_train`), newest first: notebook defaults use them."""
    root = Path(root) if root else runs_dir()
    found = []
    for run_path, manifest in _manifests(root):
        if manifest is not None and manifest.get("kind") == kind and manifest.get("status") == "completed":
            found.append(Run(run_path))
            if len(found) == n:
                return found
    raise WLDetectError(f"need {n} completed {kind} run(s) under {root}, found {len(found)}: run notebooks/{kind}.ipynb first")


def _plain(value: Any) -> Any:
    """Parameters as YAML/JSON-safe plain data (paths become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _whole_number(value: Any) -> int | None:
    """A count as an int, also where pandas made a column of ints and missing values float (50 -> 50.0);
    None for anything else (a failed run's `threshold: abc`, a boolean, NaN, 2.5)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value == value and float(value).is_integer() else None


def list_runs(root: Path | None = None):
    """Past runs as a pandas table: id, kind, status, parameters and key metrics, newest first. A run whose
    manifest is damaged is listed with status `damaged` (and its fields that are no mapping read as empty),
    so one bad file never hides the others; a `running` run whose processes are gone, `interrupted`."""
    import pandas as pd

    rows = []
    for run_path, manifest in _manifests(Path(root) if root else runs_dir()):
        if manifest is None:
            manifest = {"status": "damaged"}
        metrics = _mapping(manifest.get("metrics"))
        rows.append(
            {
                "run_id": manifest.get("run_id", run_path.name),
                "kind": manifest.get("kind"),
                "status": run_status(manifest),
                "threshold": manifest.get("threshold"),
                "threshold_share": manifest.get("threshold_share"),
                "seed": manifest.get("seed"),
                "config": _mapping(manifest.get("parameters")).get("config"),
                "accuracy": metrics.get("accuracy"),
                "f1_macro": metrics.get("f1_macro"),
                "tokens_masked": metrics.get("tokens_masked"),
                "duration_s": manifest.get("duration_s"),
            }
        )
    table = pd.DataFrame(rows)
    for column in ("threshold", "seed", "tokens_masked"):
        if column in table:  # counts, not measurements: no "10.0000"; a value that is no count (a failed run's
            # bad parameter, `threshold: abc`) is shown as missing rather than breaking the listing
            whole = [_whole_number(v) for v in table[column]]
            table[column] = pd.array(whole, dtype="Int64")
    for column in ("accuracy", "f1_macro", "duration_s"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def lineage(run: str | Path, root: Path | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """The runs and files `run` consumed, recursively: (depth, run id, manifest) of `run` and of every run
    whose files it read, each once, depth-first in the order of the manifests' inputs. A damaged manifest on
    the way is a one-line error naming it (`read_manifest`): a lineage with a hole is not the lineage."""
    root = Path(root) if root else runs_dir()
    start = Path(run) if Path(run).is_dir() else root / str(run)
    found: list[tuple[int, str, dict[str, Any]]] = []
    seen: set[str] = set()

    def visit(path: Path, depth: int) -> None:
        manifest = open_run(path).manifest()
        found.append((depth, path.name, manifest))
        seen.add(path.name)
        for entry in _mapping(manifest.get("inputs")).values():
            entry = _mapping(entry)
            producer = entry.get("run_path") or (root / entry["run"] if entry.get("run") else None)
            if not isinstance(producer, (str, Path)):
                continue
            if Path(producer).name not in seen and (Path(producer) / MANIFEST).is_file():
                visit(Path(producer), depth + 1)

    visit(start, 0)
    return found


def lineage_text(run: str | Path, root: Path | None = None) -> str:
    """`lineage` as an indented tree: each run, then the files it read (name, path, hash, producing run)."""
    lines = []
    for depth, run_id, manifest in lineage(run, root):
        indent = "    " * depth
        lines.append(f"{indent}{run_id}  [{manifest.get('kind')}, {manifest.get('status')}]")
        for name, entry in _mapping(manifest.get("inputs")).items():
            if not isinstance(entry, dict):  # a hand-edited manifest: show what is there
                lines.append(f"{indent}  {name}: {entry}")
                continue
            where = entry.get("path") or entry.get("hub_dataset")
            digest = str(entry.get("sha256") or "-")[:19]
            source = f"  <- {entry['run']}" if entry.get("run") else ""
            lines.append(f"{indent}  {name}: {where}  sha256 {digest}{source}")
    return "\n".join(lines)

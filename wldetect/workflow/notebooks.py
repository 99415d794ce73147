"""Executing the step notebooks headlessly with papermill: single steps, threshold sweeps, the whole demo.

Each execution goes straight into a new run record (`runs/<run-id>/<notebook>.ipynb` plus its HTML), so
the executed notebook *is* the report of that run. The notebooks themselves stay thin: every cell calls a
`wldetect` function.
"""

from __future__ import annotations

import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from wldetect.errors import WLDetectError
from wldetect.workflow.executors import (
    check_executor,
    detect_gpus,
    forwarded_env,
    gpus_per_task,
    init_ray,
    local_slots,
    patched_environ,
)
from wldetect.workflow.runs import Run, create_run, open_run, project_root

if TYPE_CHECKING:
    from wldetect.config import TrainingConfig

NOTEBOOKS = ["01_count_tokens", "02_create_mask", "03_train", "04_evaluate", "05_compare", "06_weight_analysis"]
KERNEL = "python3"
KERNEL_LOG = "kernel.log"  # the kernel process's own output, in the run record (see kernel_manager_class)


def notebook_path(name: str) -> Path:
    """`03_train`, `03_train.ipynb` or just `03` name the same notebook."""
    stem = Path(name).stem
    matches = [n for n in NOTEBOOKS if n == stem or n.split("_", 1)[0] == stem]
    if not matches:
        raise WLDetectError(f"unknown notebook {name!r} (expected one of {', '.join(NOTEBOOKS)})")
    path = project_root() / "notebooks" / f"{matches[0]}.ipynb"
    if not path.is_file():
        raise WLDetectError(f"{path}: notebook not found (run from the repository or set WLDETECT_PROJECT_ROOT)")
    return path


def tidy_streams(notebook: Path) -> None:
    """Merge the executed notebook's stream outputs and apply carriage returns, as Jupyter shows them:
    a progress bar's hundreds of `\r` updates become its final line instead of hundreds of outputs."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    from wldetect.io import write_text_atomic

    if not notebook.is_file():
        return
    book = nbformat.read(str(notebook), as_version=4)
    book, _ = CoalesceStreamsPreprocessor().preprocess(book, {})
    write_text_atomic(notebook, nbformat.writes(book))


def render_html(notebook: Path) -> Path | None:
    """An HTML copy next to the executed notebook, for review without Jupyter."""
    import nbformat
    from nbconvert import HTMLExporter

    from wldetect.io import write_text_atomic

    if not notebook.is_file():
        return None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return write_text_atomic(notebook.with_suffix(".html"), body)


# The steps without a `config` parameter, and why: they read the files of finished runs, whose own records name
# the parameter file they were made with, so a second one could only disagree with them.
_NO_CONFIG = {
    "05_compare": "it compares the results files of finished runs (give -p runs_to_compare), whose records name their config",
    "06_weight_analysis": "it reads a trained model's artifacts (give -p model_path), whose training_summary.json "
    "records the config it was trained with",
}

# Parameters whose notebook default is None but whose value, when given, is a whole number or a string.
_OPTIONAL_INTEGERS = {"epochs", "num_workers", "seed"}
_OPTIONAL_STRINGS = {"config", "dataset", "split"}


def check_parameters(name: str, parameters: dict[str, Any]) -> None:
    """Refuse unknown notebook parameters and values of the wrong type before a run record is made.

    papermill injects any value, so `-p threshold abc` would fail deep inside a notebook ("'>' not supported
    between 'str' and 'int'") and leave a failed run behind; here it is one line naming the parameter. The
    expected type is the type of the notebook's default (None: any value, except the optional integers and
    strings). `-p config` on a step that takes none (`_NO_CONFIG`) says why rather than only that it is unknown.
    The values are then held to the rules the notebooks apply themselves (`notebook.check_parameter_values`),
    and `-p run_dir`, which the record made here would replace, is refused.
    """
    import ast

    import papermill

    declared = papermill.inspect_notebook(str(notebook_path(name)))
    stem = notebook_path(name).stem
    for key, value in parameters.items():
        if key == "config" and key not in declared and stem in _NO_CONFIG:
            raise WLDetectError(f"-p config: {stem} takes no config: {_NO_CONFIG[stem]}")
        if key not in declared:
            raise WLDetectError(f"-p {key}: not a parameter of {notebook_path(name).stem} (expected one of {', '.join(declared)})")
        if key in ("threshold", "thresholds") and value is not None:
            _check_thresholds(key, value)
            continue
        try:
            default = ast.literal_eval(declared[key]["default"])
        except (ValueError, SyntaxError):
            continue
        if key in _OPTIONAL_INTEGERS and value is not None:
            default = 0
        elif key in _OPTIONAL_STRINGS and value is not None:
            default = ""
        if default is None or value is None and key != "threshold":
            continue
        expected = type(default)
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise WLDetectError(f"-p {key} {value!r}: expected {_TYPE_WORDS.get(expected, expected.__name__)}")
        if key == "seed" and value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise WLDetectError(f"-p seed {value!r}: expected a whole number >= 0")
    if parameters.get("seed") is not None and isinstance(parameters.get("overrides"), dict):
        from wldetect.workflow.cells import training_overrides

        training_overrides(parameters["overrides"], seed=parameters["seed"])  # a disagreeing overrides seed: one line
    if "run_dir" in parameters:  # it would be replaced by the record made here: refused rather than dropped
        raise WLDetectError(
            f"-p run_dir {parameters['run_dir']!r}: `wldetect run` makes the run record itself (under "
            "$WLDETECT_RUNS_DIR, default runs/); to fill a record made elsewhere, run the notebook with papermill"
        )
    from wldetect.workflow.cells import check_parameter_values

    check_parameter_values(stem, parameters)  # values (batch_size >= 1, epochs >= 1, paths): notebook_run's rules


def _check_thresholds(key: str, value: Any) -> None:
    """`-p threshold 10` or `-p threshold 1%` (a share of the training tokens, resolved in the notebook on
    step 1's counts), and every entry of `-p thresholds [1, 0.5%]`: parsed as the notebook will parse them."""
    from wldetect.steps.masking import parse_threshold

    if key == "thresholds" and not isinstance(value, list):
        raise WLDetectError(f"-p thresholds {value!r}: expected a list like [1, 5, 0.0025%]")
    for item in value if key == "thresholds" else [value]:
        try:
            parse_threshold(item)
        except WLDetectError:
            raise WLDetectError(
                f"-p {key} {value!r}: expected a whole number >= 0 (0: no mask) or a share of the training tokens "
                "below 100% like 0.5%"
            ) from None


_TYPE_WORDS = {int: "a whole number", str: "a string", list: "a list like [1, 2]", dict: "a mapping like {a: 1}", bool: "true or false"}


def run_notebook(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    run_name: str | None = None,
    runs_root: Path | None = None,
    raise_on_failure: bool = True,
    env: dict[str, str] | None = None,
) -> Run:
    """Execute one step notebook into a new run record and render it; the run is `failed` if a cell raised.

    `env` is added to the kernel's environment only (e.g. `CUDA_VISIBLE_DEVICES` of one concurrent run)."""
    source = notebook_path(name)
    parameters = dict(parameters or {})
    run = new_notebook_run(source.stem, parameters, run_name=run_name, runs_root=runs_root)
    return execute_into_run(run, source.stem, parameters, raise_on_failure=raise_on_failure, env=env)


def new_notebook_run(name: str, parameters: dict[str, Any], *, run_name: str | None = None, runs_root: Path | None = None) -> Run:
    """The `running` run record a notebook execution will fill (made before the execution, so an executor
    can mark it failed even when the process that ran it died)."""
    source = notebook_path(name)
    threshold = parameters.get("threshold")
    default_name = parameters.get("name") or (Path(str(parameters["config"])).stem if parameters.get("config") else source.stem)
    seed = chosen_seed(parameters) if source.stem == "03_train" else None
    return create_run(run_name or default_name, kind=source.stem, parameters=parameters, threshold=threshold, root=runs_root, seed=seed)


def chosen_seed(parameters: dict[str, Any]) -> int | None:
    """The training seed a step 3 execution was given (`seed`, else `overrides` `training.seed`), as the
    notebook resolves it (`notebook.training_overrides`); None: the config's own seed."""
    if parameters.get("seed") is not None:
        return parameters["seed"]
    overrides = parameters.get("overrides")
    return overrides.get("training.seed") if isinstance(overrides, dict) else None


def check_seeds(seeds: list[int] | None, overrides: dict[str, Any] | None = None) -> list[int] | None:
    """A sweep's seeds: distinct whole numbers >= 0, and not also given as `overrides` `training.seed`."""
    if seeds is None:
        return None
    seeds = list(seeds)
    if not seeds:
        raise WLDetectError("--seeds: give at least one seed")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise WLDetectError(f"--seeds {seeds}: expected whole numbers >= 0")
    if len(set(seeds)) != len(seeds):
        raise WLDetectError(f"--seeds {seeds}: each seed once")
    if overrides and "training.seed" in overrides:
        raise WLDetectError("--seeds and -p overrides training.seed both set the training seed: give --seeds alone")
    return seeds


def kernel_manager_class(env: dict[str, str] | None = None, log: BinaryIO | None = None):
    """A jupyter kernel manager class whose kernels start with `env` added to this process's environment
    (os.environ itself is left alone, so concurrent runs in threads each give their kernel its own) and, with
    `log`, write their own standard output and error there.

    That is the kernel process's own output, not the cells' (theirs goes into the notebook): ipykernel's log
    (its warnings about TCP transport, the interrupt jupyter_client sends before every shutdown) and what a
    crashing C extension or the interpreter prints on the way down. In the run record it is evidence of how
    a kernel died; on the console of `wldetect run` / `demo` it was only noise between the steps' lines.
    """
    from jupyter_client import AsyncKernelManager

    extra = {str(k): str(v) for k, v in (env or {}).items()}

    class RunKernelManager(AsyncKernelManager):
        async def _async_start_kernel(self, **kw: Any) -> None:
            if extra:
                kw["env"] = {**(kw.get("env") or os.environ), **extra}
            if log is not None:
                kw["stdout"] = kw["stderr"] = log
            await super()._async_start_kernel(**kw)

        start_kernel = _async_start_kernel

    return RunKernelManager


def execute_into_run(
    run: Run, name: str, parameters: dict[str, Any], *, raise_on_failure: bool = True, env: dict[str, str] | None = None
) -> Run:
    """Execute a step notebook with papermill into the existing run record `run` and render it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = notebook_path(name)
    executed = run.path / source.name
    started = time.time()
    error: str | None = None
    try:
        with open(run.path / KERNEL_LOG, "ab") as kernel_log:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters={**parameters, "run_dir": str(run.path)},
                kernel_name=KERNEL,
                cwd=str(project_root()),
                progress_bar=False,
                kernel_manager_class=kernel_manager_class(env, kernel_log),
            )
    except PapermillExecutionError as err:  # a cell raised: the executed notebook shows where
        error = f"{err.ename}: {err.evalue}".splitlines()[0]
    except BaseException as err:  # the kernel died (out of memory), timed out, or Ctrl-C: still a failed run
        error = (f"{type(err).__name__}: {err}".splitlines() or [type(err).__name__])[0]
        error += f" (the kernel's own output: {run.path / KERNEL_LOG})"
        if not isinstance(err, Exception):
            run.fail(error)
            raise
    finally:
        run.record_timing(source.stem, time.time() - started)
        tidy_streams(executed)
        run.record_notebook(executed, render_html(executed))
    if error is not None:
        if run.manifest().get("status") != "failed":
            run.fail(error)
        if raise_on_failure:
            raise WLDetectError(f"notebook {source.stem} failed ({error}); see {executed}")
    elif run.manifest().get("status") == "running":
        run.finish()
    return run


def sweep(
    config: str | Path,
    thresholds: list[int | str],
    *,
    jobs: int = 1,
    name: str | None = None,
    overrides: dict[str, Any] | None = None,
    runs_root: Path | None = None,
    executor: str = "local",
    address: str | None = None,
    runs_per_gpu: int = 1,
    raise_on_failure: bool = True,
    count_run: str | Path | None = None,
    masks: dict[int | str, str | Path] | None = None,
    seeds: list[int] | None = None,
) -> Run:
    """Train once per threshold (and seed) from one step 1 run's token ids, then compare all runs in one report.

    `count_run`: the step 1 run (01_count_tokens) whose token ids and counts every training run reads; None
    runs step 1 first, into its own run record. `masks`: step 2 mask files to train from, by threshold (the
    other thresholds' masks are made by each training run from the step 1 counts, in its own record).
    The first threshold is the baseline of the comparison (put 0, no mask, first). A threshold is a count or a
    share of the training tokens (`"0.0025%"`); shares are resolved on the count run's counts before training
    (`resolve_sweep_thresholds`), and each training run records both (`0.0025% -> threshold 1`). `seeds`: train every
    threshold with each of these `training.seed`s (`-p seed` of 03_train: in each run's id and manifest); each
    seed's runs are compared with that seed's baseline and the report aggregates over seeds
    (`comparison.SeedAwareComparison`). None: one seed, the config's. Executors:
    - `local` (default): `jobs` papermill kernels on this machine. With GPUs visible (and training.device
      auto or cuda) each concurrent run gets its own GPU through CUDA_VISIBLE_DEVICES (`runs_per_gpu` > 1
      shares them); without, each kernel gets its share of the CPU threads.
    - `ray`: every training run is a Ray task (one GPU each where training uses cuda) on the cluster at
      `address` (None: a local Ray instance); `jobs` is then the cluster's business.
    A failed training run is marked failed and the others go on; the report lists it. With
    `raise_on_failure`, a sweep with failed runs then raises, naming them. A failed baseline leaves nothing to
    compare with: no report, and an error naming it (`sweep_report`).
    """
    from wldetect.config import load_training_config

    check_executor(executor, address)
    from wldetect.steps.masking import parse_threshold

    if not thresholds:
        raise WLDetectError("sweep: give at least one threshold")
    try:
        thresholds = [parse_threshold(t) for t in thresholds]
    except WLDetectError as err:
        raise WLDetectError(f"sweep: thresholds {thresholds}: {err}") from None
    seeds = check_seeds(seeds, overrides)
    training_config = load_training_config(config, overrides)
    if executor == "ray":  # reach the cluster before counting, so a wrong --address fails at once

        init_ray(address)
    name = name or f"sweep-{Path(config).stem}"
    runs_root = Path(runs_root).resolve() if runs_root else None
    if count_run is None:  # step 1, once, as a run record of its own: every training run reads its files
        count_run = run_notebook(
            "01_count_tokens", {"config": str(config), "overrides": overrides or {}}, run_name=name, runs_root=runs_root
        ).path
    masks = {parse_threshold(t): str(path) for t, path in (masks or {}).items()}
    resolve_sweep_thresholds(thresholds, count_run, training_config, masks)
    # seed by seed, each seed's baseline first (the order sweep_report reads baselines in)
    jobs_to_run = [
        {
            "config": str(config), "threshold": threshold, "name": name, "overrides": overrides or {},
            "count_run": str(count_run), **({"token_mask": masks[threshold]} if threshold in masks else {}),
            **({"seed": seed} if seed is not None else {}),
        }
        for seed in (seeds or [None])
        for threshold in thresholds
    ]  # fmt: skip
    if executor == "ray":

        training_runs = ray_run_notebooks(
            "03_train", jobs_to_run, run_name=name, runs_root=runs_root, address=address,
            device=training_config.training.device,
        )  # fmt: skip
    else:
        training_runs = _local_run_notebooks(
            "03_train", jobs_to_run, run_name=name, runs_root=runs_root, jobs=jobs, device=training_config.training.device,
            runs_per_gpu=runs_per_gpu,
        )  # fmt: skip
    return sweep_report(training_runs, name, runs_root=runs_root, raise_on_failure=raise_on_failure)


def resolve_sweep_thresholds(
    thresholds: list[int | str], count_run: str | Path, config: TrainingConfig, masks: dict[int | str, str] | None = None
) -> dict[int | str, Any]:
    """What each training run of a sweep will mask, decided before any starts by the function every run decides
    it with (`masking.resolve_mask`): a step 2 mask file given for a threshold that is not that threshold's
    mask fails the sweep now rather than each run, and each share threshold is printed as the count it means
    on the count run's counts (`0.0025% -> threshold 1: 45.10 % of vocabulary, 0.0000 % of tokens`), so a
    share that lands on the same count as another threshold of the sweep is seen at once. The counts are not
    read when there is nothing to resolve or check (every threshold a count, no mask files). Returns
    {spec: masking.ResolvedThreshold} of the shares."""
    shares = [t for t in thresholds if isinstance(t, str)]
    if not shares and not masks:
        return {}
    from wldetect.steps.count_files import load_counts
    from wldetect.steps.masking import resolve_mask, resolve_threshold

    token_counts = load_counts(count_run)
    for threshold, token_mask in (masks or {}).items():
        resolve_mask(config, token_counts, token_mask, threshold)
    counts = token_counts.counts
    resolved = {spec: resolve_threshold(spec, counts) for spec in shares}
    for spec, threshold in resolved.items():
        same = [str(t) for t in thresholds if t != spec and resolve_threshold(t, counts).count == threshold.count]
        print(
            f"sweep: {threshold.label}: {100 * threshold.masked_vocab_share:.2f} % of vocabulary, "
            f"{100 * threshold.masked_data_share:.4f} % of tokens"
            + (f" (the same mask as {', '.join(same)})" if same else "")
        )
    return resolved


def _local_run_notebooks(
    notebook: str,
    parameter_sets: list[dict[str, Any]],
    *,
    run_name: str,
    runs_root: Path | None,
    jobs: int,
    device: str,
    runs_per_gpu: int = 1,
) -> list[Run]:
    """Run each parameter set in its own kernel, `jobs` at a time, each holding one slot (a GPU, a thread share)."""
    import queue


    gpus = detect_gpus() if device in ("auto", "cuda") else []
    slots = local_slots(jobs, len(parameter_sets), gpus, runs_per_gpu=runs_per_gpu, cpu_count=os.cpu_count() or 1, environ=os.environ)
    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)

    def run_one(parameters: dict[str, Any]) -> Run:
        slot = free.get()
        try:
            run = new_notebook_run(notebook, parameters, run_name=run_name, runs_root=runs_root)
            run.record_executor({"executor": "local", **{k.lower(): v for k, v in slot.items()}})
            return execute_into_run(run, notebook, parameters, raise_on_failure=False, env=slot)
        finally:
            free.put(slot)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        return list(pool.map(run_one, parameter_sets))


def sweep_report(training_runs: list[Run], name: str, *, runs_root: Path | None = None, raise_on_failure: bool = True) -> Run:
    """The comparison report (05_compare) of a sweep's completed runs; failed ones are listed in it.

    The first run is the baseline every delta and McNemar test is measured against; with seeds (the manifests'
    `seed`), the first run of each seed is that seed's baseline. If one did not complete, no report is made
    (whatever `raise_on_failure`): comparing with the first masked run instead would look like a normal sweep
    report and mean something else. The error names the baseline run; the other runs have finished by then,
    so their records are kept."""
    manifests = [r.manifest() for r in training_runs]
    statuses = [r.status() for r in training_runs]  # a run whose processes died is interrupted, never done
    completed = [str(r.path) for r, status in zip(training_runs, statuses) if status == "completed"]
    failed = {r.run_id: m.get("error") or status for r, m, status in zip(training_runs, manifests, statuses) if status != "completed"}
    # the seed each run was asked to train with (a sweep's --seeds), else the one its record names; with at most
    # one seed named, all runs are one group (a run that failed before training records no seed, and must not
    # become a baseline of its own)
    seeds = [(m.get("parameters") or {}).get("seed", m.get("seed")) for m in manifests]
    if len({s for s in seeds if s is not None}) <= 1:
        seeds = [None] * len(seeds)
    baselines = {seed: index for index, seed in reversed(list(enumerate(seeds)))}  # the first run of each seed
    for seed, index in sorted(baselines.items(), key=lambda item: item[1]):
        if statuses[index] == "completed":
            continue
        baseline = training_runs[index]
        outcome = f"failed ({_first_line(failed[baseline.run_id])})" if statuses[index] == "failed" else f"is {statuses[index]}"
        which = f", seed {seed}" if len(baselines) > 1 else ""
        raise WLDetectError(
            f"sweep: the baseline run {baseline.run_id} (threshold {manifests[index].get('threshold')}{which}) {outcome}, "
            f"so no comparison report was made (every run is compared with the baseline); {len(completed)} of "
            f"{len(training_runs)} training runs completed and are kept: rerun the baseline and compare them with "
            f"`wldetect compare BASELINE RUN...`"
        )
    report = run_notebook(
        "05_compare",
        {"runs_to_compare": completed, "name": name, "failed_runs": failed},
        run_name=f"{name}-report",
        runs_root=runs_root,
        raise_on_failure=raise_on_failure and not failed,
    )
    if failed and raise_on_failure:
        listed = "; ".join(f"{run_id}: {error}" for run_id, error in failed.items())
        raise WLDetectError(f"sweep: {len(failed)} of {len(training_runs)} training runs failed ({listed}); report: {report.path}")
    return report


def _first_line(text: Any) -> str:
    return (str(text).strip().splitlines() or [""])[0]


# ------------------------------------------------------------------------------ ray: training runs as tasks


def _execute_notebook_task(run_path: str, notebook: str, parameters: dict[str, Any], env: dict[str, str], threads: int) -> dict:
    """A Ray task: execute `notebook` into the run record at `run_path` (made by the driver) on this node."""
    import ray

    with patched_environ(env):
        path = Path(run_path)
        if not path.is_dir():
            raise WLDetectError(
                f"{run_path} is not visible on node {socket.gethostname()}: the Ray executor needs the project and "
                "runs directory on a filesystem every node mounts at the same path"
            )
        run = open_run(path)
        context = ray.get_runtime_context()
        run.record_executor(
            {
                "executor": "ray",
                "hostname": socket.gethostname(),
                "node_ip": ray.util.get_node_ip_address(),
                "node_id": context.get_node_id(),
                "task_id": context.get_task_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "omp_num_threads": str(threads),
            },
            machine=True,
        )
        execute_into_run(run, notebook, parameters, raise_on_failure=False, env={"OMP_NUM_THREADS": str(threads)})
        manifest = run.manifest()
        return {"run_id": run.run_id, "status": manifest.get("status"), "error": manifest.get("error")}


def ray_run_notebooks(
    notebook: str,
    parameter_sets: list[dict[str, Any]],
    *,
    run_name: str | None = None,
    runs_root: Path | None = None,
    address: str | None = None,
    device: str = "auto",
    cpus_per_run: int = 1,
) -> list[Run]:
    """Execute `notebook` once per parameter set as Ray tasks; return their run records in the same order.

    The driver makes each run record first (so ids are allocated in one place and a task that dies, with its
    worker or node, is still marked failed here); the task fills it on its node. No retries: a rerun of a
    half-written run record is not the same run.
    """
    from wldetect.workflow.runs import runs_dir

    ray = init_ray(address)
    gpus = gpus_per_task(device, ray.cluster_resources().get("GPU", 0))
    runs_root = Path(runs_root or runs_dir()).resolve()
    env = forwarded_env()
    env["WLDETECT_RUNS_DIR"] = str(runs_root)
    task = ray.remote(_execute_notebook_task)
    submitted = []
    for parameters in parameter_sets:
        run = new_notebook_run(notebook, parameters, run_name=run_name, runs_root=runs_root)
        run.record_executor({"executor": "ray", "submitted": True, "num_gpus": gpus, "num_cpus": cpus_per_run})
        options = task.options(num_cpus=cpus_per_run, num_gpus=gpus, max_retries=0, name=f"wldetect:{run.run_id}")
        submitted.append((run, options.remote(str(run.path), notebook, parameters, env, cpus_per_run)))
    runs = []
    try:
        for run, ref in submitted:
            try:
                ray.get(ref)
            except Exception as err:  # the task raised outside the notebook, or its worker or node died
                message = (f"{type(err).__name__}: {err}".strip().splitlines() or [type(err).__name__])
                cause = next((line.strip() for line in reversed(message) if line.strip()), message[0])
                if run.manifest().get("status") == "running":
                    run.fail(f"Ray task failed: {cause}")
            runs.append(run)
    except BaseException:  # Ctrl-C: cancel what is still queued or running; no run is left `running`
        for run, ref in submitted[len(runs) :]:
            ray.cancel(ref, force=True)
            if run.manifest().get("status") == "running":
                run.fail("interrupted: the sweep was stopped before this Ray task finished")
        raise
    return runs


# The demo's sweep: no mask, a share of the training tokens (the seed's own unit: 1 % of this small corpus's
# tokens resolves to threshold 2), and the seed's threshold 10, each trained with three seeds.
DEMO_THRESHOLDS = (0, "1%", 10)
DEMO_SEEDS = (0, 1, 2)


def demo(
    config: str | Path = "params/training/demo.yaml",
    threshold: int | str = 10,
    thresholds: tuple[int | str, ...] = DEMO_THRESHOLDS,
    evaluation_set: str = "pud",
    jobs: int | None = None,
    seeds: tuple[int, ...] = DEMO_SEEDS,
) -> dict[str, Run]:
    """The whole workflow on the embedded default, each step reading the files of the one before: step 1's
    token ids and counts, step 2's mask report at `threshold`, a sweep of `thresholds` (0 first: the
    baseline) over `seeds`, training from step 1's ids (the `threshold` runs from step 2's mask file), with
    its seed-aware comparison report, evaluation of the first seed's `threshold` model's tables on the
    shipped PUD sentences against its baseline, and its weight analysis.

    The sweep trains `jobs` runs at a time (default: one per core, each on its share of the threads): on a
    small machine the kernels' start-up, imports and reports then overlap with another run's training.
    Returns the run of each step."""
    from wldetect.steps.masking import parse_threshold

    config = str(config)
    threshold = parse_threshold(threshold)
    given = {parse_threshold(t) for t in (0, threshold, *thresholds)}  # counts first, in order, then shares
    thresholds = tuple(sorted(given, key=lambda t: (isinstance(t, str), t if isinstance(t, int) else float(t[:-1]))))
    seeds = tuple(seeds) or (None,)
    steps: dict[str, Run] = {}
    steps["01_count_tokens"] = count_run = run_notebook("01_count_tokens", {"config": config}, run_name="demo")
    steps["02_create_mask"] = mask_run = run_notebook(
        "02_create_mask", {"config": config, "threshold": threshold, "count_run": str(count_run.path)}, run_name="demo"
    )
    report = sweep(
        config, list(thresholds), name="demo", jobs=jobs or os.cpu_count() or 1, count_run=count_run.path,
        masks={threshold: mask_run.path / "token_mask.npy"}, seeds=None if seeds == (None,) else list(seeds),
    )  # fmt: skip
    runs = iter(open_run(p) for p in report.manifest()["parameters"]["runs"])  # seed by seed, thresholds in order
    training_runs = {(seed, t): next(runs) for seed in seeds for t in thresholds}
    for (seed, t), run in training_runs.items():
        label = "baseline" if t == 0 else f"t={t}"
        steps[f"03_train ({label}" + (f", seed {seed})" if seed is not None else ")")] = run
    steps["05_compare"] = report
    baseline_run, masked_run = training_runs[(seeds[0], 0)], training_runs[(seeds[0], threshold)]
    steps["04_evaluate"] = run_notebook(
        "04_evaluate",
        {
            "config": config, "model_path": str(masked_run.artifacts_dir), "dataset": evaluation_set,
            "compare_with": str(baseline_run.artifacts_dir),
        },  # fmt: skip
        run_name="demo",
    )
    steps["06_weight_analysis"] = run_notebook(
        "06_weight_analysis",
        {"model_path": str(masked_run.artifacts_dir), "baseline_path": str(baseline_run.artifacts_dir)},
        run_name="demo",
    )
    return steps

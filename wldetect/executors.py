"""Where sweeps and counting run: this machine (every GPU of it), or a Ray cluster.

- `local`: sweeps run `--jobs N` papermill kernels here. Each concurrent run holds one *slot*: with GPUs
  visible, one GPU (`CUDA_VISIBLE_DEVICES` of its kernel; never two runs on a GPU unless `runs_per_gpu` asks);
  without, its share of the CPU threads (`OMP_NUM_THREADS`). `local_slots` decides, from nothing but the
  visible devices, so it is tested without a GPU.
- `ray`: each training run is a Ray task (one GPU where training uses cuda) that executes the notebook on
  whichever node Ray picks, straight into the run record the driver made for it; counting is a Ray Data map
  over blocks of the training examples (tokenise + count per block, summed on the driver).

Ray is optional (`pip install -e '.[ray]'`) and imported only when an executor needs it. Ray tasks read and
write the project, the runs directory and the wldetect cache at the driver's paths: on one node that is a
given; on several, put them on a filesystem every node mounts at the same path (NFS, a cluster's /shared).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wldetect.errors import WLDetectError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from wldetect.counting import TokenCounter
    from wldetect.runs import Run

EXECUTORS = ("local", "ray")
RAY_INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install -e '.[ray]'"
# Environment a Ray task takes from the driver: where the project, runs and cache are, and offline flags.
_FORWARDED_PREFIXES = ("WLDETECT_",)
_FORWARDED_NAMES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
DEFAULT_BLOCK_EXAMPLES = 65_536  # ~2.6 M tokens of OpenLID text: seconds of work per task, ~1,850 tasks


def check_executor(executor: str, address: str | None = None) -> None:
    """A known executor, Ray installed where it is asked for, and an address only for Ray."""
    if executor not in EXECUTORS:
        raise WLDetectError(f"unknown executor {executor!r} (expected {' or '.join(EXECUTORS)})")
    if address and executor != "ray":
        raise WLDetectError(f"--address {address} is a Ray cluster address: give it with --executor ray")
    if executor == "ray":
        import_ray()


# ------------------------------------------------------------------------------------------ local: slots


def visible_gpus(environ: Mapping[str, str], device_count: int) -> list[str]:
    """The GPUs this process may hand out, as CUDA_VISIBLE_DEVICES entries (indices, UUIDs or MIG ids).

    An existing CUDA_VISIBLE_DEVICES is the list (empty or -1: none); otherwise all `device_count` devices."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [e.strip() for e in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        visible = []
        for entry in entries:
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            visible.append(entry)
        return visible
    return [str(i) for i in range(max(0, int(device_count)))]


def detect_gpus() -> list[str]:
    """visible_gpus of this process (torch's device count; none where torch has no CUDA)."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        count = 0
    return visible_gpus(os.environ, count) if count else []


def local_slots(
    jobs: int,
    n_runs: int,
    gpus: list[str],
    *,
    runs_per_gpu: int = 1,
    cpu_count: int = 1,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """The kernel environments of a local sweep's concurrent runs: one entry per run executing at once.

    With GPUs: at most `runs_per_gpu` runs per GPU (so `jobs` is capped at len(gpus) * runs_per_gpu), dealt
    round robin so a second run lands on a GPU only when every GPU has one. On CPU (or with GPUs too) and
    more than one slot: each kernel gets cpu_count // slots OpenMP threads, unless OMP_NUM_THREADS is set.
    """
    if runs_per_gpu < 1:
        raise WLDetectError(f"runs per GPU must be >= 1, got {runs_per_gpu}")
    environ = environ if environ is not None else {}
    slots = max(1, min(int(jobs), int(n_runs)))
    if gpus:
        slots = min(slots, len(gpus) * runs_per_gpu)
    envs: list[dict[str, str]] = [{} for _ in range(slots)]
    for index, env in enumerate(envs):
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        if slots > 1:
            env["OMP_NUM_THREADS"] = environ.get("OMP_NUM_THREADS") or str(max(1, int(cpu_count) // slots))
    return envs


# ------------------------------------------------------------------------------------------- ray: setup


def import_ray():
    try:
        import ray
    except ImportError:
        raise WLDetectError(RAY_INSTALL_HINT) from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to the cluster at `address` ("auto": the one started on this node with `ray start --head`),
    or start a local Ray instance (no dashboard, no usage statistics). Reuses an existing connection."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A busy machine can take longer than Ray's 15 s to start a node's agent processes (Python imports):
    # wait up to a minute rather than have the new node's raylet give up.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "60000")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": True}
    _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = address or "a new local instance"
        raise WLDetectError(f"could not connect to the Ray cluster at {where}: {err}".splitlines()[0]) from None
    return ray


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must accept a connection: Ray itself retries a dead address
    for minutes before saying anything."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise WLDetectError(
            f"no Ray cluster answers at {address} ({err.strerror or type(err).__name__}): start one with "
            "`ray start --head` there, or leave out --address for a local Ray"
        ) from None


def forwarded_env() -> dict[str, str]:
    """What a Ray task sets from the driver's environment: WLDETECT_* (runs, cache, project root) and offline flags."""
    from wldetect.runs import project_root

    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED_NAMES}
    env["WLDETECT_PROJECT_ROOT"] = str(project_root())
    return env


class _patched_environ:
    """os.environ with `env` applied for the duration of a task (Ray reuses worker processes)."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------------- ray: notebooks


def _execute_notebook_task(run_path: str, notebook: str, parameters: dict[str, Any], env: dict[str, str], threads: int) -> dict:
    """A Ray task: execute `notebook` into the run record at `run_path` (made by the driver) on this node."""
    import ray

    with _patched_environ(env):
        from wldetect.runs import open_run
        from wldetect.workflow import execute_into_run

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


def gpus_per_task(device: str, cluster_gpus: float) -> int:
    """One GPU per training run where training uses cuda (auto: if the cluster has any), else none."""
    if device == "cuda":
        if cluster_gpus <= 0:
            raise WLDetectError("training.device is cuda but the Ray cluster has no GPUs (use auto or cpu)")
        return 1
    return 1 if device == "auto" and cluster_gpus > 0 else 0


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
    from wldetect.runs import runs_dir
    from wldetect.workflow import new_notebook_run

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


# ----------------------------------------------------------------------------------------- ray: counting


class _BlockCounter:
    """A Ray Data actor: holds the examples, labels and tokenizer once; counts blocks of examples."""

    shared: list = []  # [ObjectRef of (texts, labels, tokenizer JSON, vocab size, model name, batch size)]

    def __init__(self):
        import ray
        from tokenizers import Tokenizer

        texts, labels, tokenizer_json, vocab_size, model_name, batch_size = ray.get(self.shared[0])
        self.texts, self.labels = texts, labels
        self.tokenizer = Tokenizer.from_str(tokenizer_json)  # with the driver's truncation, no padding
        self.vocab_size, self.model_name, self.batch_size = vocab_size, model_name, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from wldetect.counting import count_block

        keys, counts = [], []
        for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist()):
            block_keys, block_counts = count_block(
                self.tokenizer, self.texts, self.labels, start, stop, self.vocab_size, self.batch_size, self.model_name
            )
            keys.append(block_keys)
            counts.append(block_counts)
        return {"key": np.concatenate(keys), "count": np.concatenate(counts)}


def ray_count_dataset(
    data,
    tokenizer: Tokenizer,
    vocab_size: int,
    batch_size: int = 512,
    *,
    address: str | None = None,
    block_examples: int | None = None,
    actors: int | None = None,
    progress: bool = True,
    model_name: str = "the model",
) -> TokenCounter:
    """`count_dataset` on Ray Data: the examples (a `TrainingData`, selected by the same code as the
    single-process count) are cut into blocks of `block_examples`; actors tokenise each block and reduce it to
    (language x vocab key, count) pairs with `count_block`; the driver sums them into a `TokenCounter`.
    Integer sums in any order: the result is the single-process count, bit for bit."""
    from wldetect.counting import TokenCounter

    block_examples = DEFAULT_BLOCK_EXAMPLES if block_examples is None else int(block_examples)
    if block_examples <= 0:
        raise WLDetectError(f"block size must be positive, got {block_examples}")
    ray = init_ray(address)
    from ray.data import ActorPoolStrategy

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a summary line below, not a log line a second
    counter = TokenCounter(vocab_size, len(data.languages), model_name)
    n = len(data)
    if n == 0:
        return counter
    blocks = [{"start": s, "stop": min(s + block_examples, n)} for s in range(0, n, block_examples)]
    texts = data.dataset.select_columns(["text"])
    shared = ray.put((texts, np.asarray(data.labels), tokenizer.to_str(), int(vocab_size), model_name, int(batch_size)))
    actors = actors or max(1, min(len(blocks), int(ray.cluster_resources().get("CPU", 1))))
    started = time.perf_counter()
    pairs = ray.data.from_items(blocks, override_num_blocks=len(blocks)).map_batches(
        type("BlockCounter", (_BlockCounter,), {"shared": [shared]}),  # the data travel by reference, once
        batch_size=1,
        compute=ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    for batch in pairs.iter_batches(batch_size=None, batch_format="numpy"):
        counter.add_counts(batch["key"], batch["count"])
    if progress:
        print(f"Counted {n:,} examples in {len(blocks)} Ray blocks on {actors} actor(s) in {time.perf_counter() - started:.1f} s")
    return counter

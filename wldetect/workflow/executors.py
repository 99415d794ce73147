"""Where sweeps and counting run: this machine (every GPU of it), or a Ray cluster.

- `local`: sweeps run `--jobs N` papermill kernels here. Each concurrent run holds one *slot*: with GPUs
  visible, one GPU (`CUDA_VISIBLE_DEVICES` of its kernel; never two runs on a GPU unless `runs_per_gpu` asks);
  without, its share of the CPU threads (`OMP_NUM_THREADS`). `local_slots` decides, from nothing but the
  visible devices, so it is tested without a GPU.
- `ray`: each training run is a Ray task (one GPU where training uses cuda) that executes the notebook on
  whichever node Ray picks, straight into the run record the driver made for it (`workflow.ray_run_notebooks`);
  counting is a Ray Data map over blocks of the training examples, tokenise + count per block, summed on the
  driver (`counting.ray_count_dataset`). This module holds what both need and imports neither.

Ray is optional (`pip install -e '.[ray]'`) and imported only when an executor needs it. Ray tasks read and
write the project, the runs directory and the wldetect cache at the driver's paths: on one node that is a
given; on several, put them on a filesystem every node mounts at the same path (NFS, a cluster's /shared).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from wldetect.errors import WLDetectError
from wldetect.workflow.runs import project_root

EXECUTORS = ("local", "ray")
RAY_INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install -e '.[ray]'"
# Environment a Ray task takes from the driver: where the project, runs and cache are, and offline flags.
_FORWARDED_PREFIXES = ("WLDETECT_",)
_FORWARDED_NAMES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


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
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED_NAMES}
    env["WLDETECT_PROJECT_ROOT"] = str(project_root())
    return env


class patched_environ:
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


# ------------------------------------------------------------------------------------------- ray: tasks


def gpus_per_task(device: str, cluster_gpus: float) -> int:
    """One GPU per training run where training uses cuda (auto: if the cluster has any), else none."""
    if device == "cuda":
        if cluster_gpus <= 0:
            raise WLDetectError("training.device is cuda but the Ray cluster has no GPUs (use auto or cpu)")
        return 1
    return 1 if device == "auto" and cluster_gpus > 0 else 0

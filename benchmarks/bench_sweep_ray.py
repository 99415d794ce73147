"""What a Ray task adds to a training run of a sweep: the same threshold sweep through both executors.

A tiny model and corpus (the tests' word-level tokenizer, 3 languages, 120 examples) keep the training
itself to well under a second, so the wall time of a run is almost all notebook execution: papermill, a
kernel start, imports, rendering the HTML. Both executors run --thresholds one after another (--jobs 1 /
one CPU per Ray task on a 1-CPU slot) so the difference per run is the Ray task's overhead; Ray's start-up
is printed separately (a cluster that is already running does not pay it).

    .venv/bin/python benchmarks/bench_sweep_ray.py [--thresholds 0 1 3 5] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[0, 1, 3, 5])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import TINY_EXTRA_ROWS, tiny_vocabulary, write_hub_model, write_tiny_project

    from wldetect.steps.counting import count_tokens
    from wldetect.workflow import executors, notebooks

    with tempfile.TemporaryDirectory(prefix="wldetect-bench-sweep-") as tmp:
        root = Path(tmp)
        os.environ.update(WLDETECT_CACHE_DIR=str(root / "cache"), WLDETECT_PROJECT_ROOT=str(REPO), HF_HUB_OFFLINE="1")
        write_hub_model(root / "model", rows=len(tiny_vocabulary()) + TINY_EXTRA_ROWS, hidden=8)
        config = str(write_tiny_project(root, root / "model"))
        count_tokens(config, verbose=False)
        parameter_sets = [{"config": config, "threshold": t, "name": "bench", "overrides": {}} for t in args.thresholds]
        started = time.perf_counter()
        executors.init_ray(num_cpus=1)  # one task at a time, like --jobs 1
        startup = time.perf_counter() - started

        def local() -> None:
            notebooks._local_run_notebooks("03_train", parameter_sets, run_name="bench", runs_root=root / "local", jobs=1, device="cpu")

        def on_ray() -> None:
            runs = notebooks.ray_run_notebooks("03_train", parameter_sets, run_name="bench", runs_root=root / "ray", device="cpu")
            assert all(r.manifest()["status"] == "completed" for r in runs)

        timings: dict[str, list[float]] = {"local, --jobs 1": [], "ray, 1 CPU": []}
        for _ in range(args.repeats):
            for name, method in zip(timings, (local, on_ray)):
                start = time.perf_counter()
                method()
                timings[name].append(time.perf_counter() - start)

    n = len(parameter_sets)
    print(f"{n} training runs of the tiny model per sweep; Ray started in {startup:.1f} s; {os.cpu_count()} cores")
    for name, runs in timings.items():
        print(f"{name:<20} {statistics.median(runs):8.1f} s per sweep, {statistics.median(runs) / n:6.2f} s per run")
    extra = (statistics.median(timings["ray, 1 CPU"]) - statistics.median(timings["local, --jobs 1"])) / n
    print(f"Ray overhead per training run: {extra:+.2f} s")


if __name__ == "__main__":
    main()

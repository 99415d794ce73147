"""The Ray executor on a local Ray cluster (2 CPUs, loopback, no dashboard): sweeps and distributed counting
give the same run records and counts as the local executor; a failed task fails only its own run."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_LANGUAGES, evaluate_on_text_directory, module_tiny_project, tiny_sentences

ray = pytest.importorskip("ray")

from wldetect.steps import counting  # noqa: E402
from wldetect.workflow import executors, notebooks  # noqa: E402
from wldetect.workflow.runs import list_runs, open_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data")  # Ray Data's own settings


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module (starting one takes seconds); shut down afterwards."""
    started = not ray.is_initialized()
    executors.init_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


# ------------------------------------------------------------------------------------------------ counting


def _write_shards(directory: Path, n_shards: int = 4) -> None:
    """Parquet shards of the tiny languages with a blank text and an unknown language mixed in."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(text, code) for code in TINY_LANGUAGES for text in tiny_sentences(code, 70, seed=5)]
    rows += [("   ", "eng_Latn"), ("ein satz", "xxx_Latn")]
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    directory.mkdir(parents=True)
    for shard in range(n_shards):
        part = rows[shard::n_shards]
        table = pa.table({"text": [t for t, _ in part], "language": [c for _, c in part]})
        pq.write_table(table, directory / f"train-{shard:05d}-of-{n_shards:05d}.parquet")


def test_distributed_count_of_shards_is_the_single_process_count_bit_for_bit(ray_cluster, tmp_path, tiny_training_config, monkeypatch):
    _write_shards(tmp_path / "shards")
    data = yaml.safe_load(tiny_training_config.read_text())
    data["dataset"] = {"name": str(tmp_path / "shards"), "filter_languages": True, "max_samples_per_language": 60, "shuffle_seed": 4}
    tiny_training_config.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(counting, "CHUNK_EXAMPLES", 16)  # 180 examples: 12 blocks (= token-id chunks), several per actor

    distributed = counting.count_tokens(tiny_training_config, output=tmp_path / "ray" / "token_counts.npy", executor="ray")
    single = counting.count_tokens(tiny_training_config, output=tmp_path / "one" / "token_counts.npy", use_cache=False)
    assert not distributed.from_cache and distributed.n_examples == single.n_examples == 180
    assert distributed.counts.dtype == np.int64 and np.array_equal(distributed.counts, single.counts)
    assert (distributed.per_language != single.per_language).nnz == 0 and distributed.languages == single.languages
    assert (tmp_path / "ray" / "token_counts.npy").read_bytes() == (tmp_path / "one" / "token_counts.npy").read_bytes()
    ray_meta = json.loads((tmp_path / "ray" / "token_counts_per_language.json").read_text())
    one_meta = json.loads((tmp_path / "one" / "token_counts_per_language.json").read_text())
    assert {k: v for k, v in ray_meta.items() if k != "cache_key"} == {k: v for k, v in one_meta.items() if k != "cache_key"}
    # the token ids training reads: the actors wrote the same chunk files the single process writes
    ray_ids, one_ids = sorted(distributed.token_ids_path.iterdir()), sorted(single.token_ids_path.iterdir())
    assert [p.name for p in ray_ids] == [p.name for p in one_ids] and len(ray_ids) == 2 * 12 + 2
    for a, b in zip(ray_ids, one_ids):
        if a.suffix == ".npy":
            assert a.read_bytes() == b.read_bytes(), a.name
    # Same cache key: the Ray count filled the entry a local count now reuses.
    again = counting.count_tokens(tiny_training_config)
    assert again.from_cache and again.cache_path == distributed.cache_path and np.array_equal(again.counts, single.counts)


# -------------------------------------------------------------------------------------------------- sweeps


@pytest.fixture(scope="module")
def ray_and_local_sweeps(ray_cluster, tmp_path_factory):
    """The same 2-threshold sweep of the tiny model through both executors, into two runs directories."""
    root = tmp_path_factory.mktemp("ray-sweep")
    with module_tiny_project(root) as (config, _, patch):
        evaluate_on_text_directory(root, config)
        patch.setenv("WLDETECT_PROJECT_ROOT", str(ROOT))
        remote = notebooks.sweep(str(config), [0, 3], name="tiny", runs_root=root / "runs-ray", executor="ray")
        count_run = open_run(remote.manifest()["parameters"]["runs"][0]).manifest()["parameters"]["count_run"]
        local = notebooks._local_run_notebooks(  # the local sweep's training runs (its report is tested elsewhere)
            "03_train",
            [{"config": str(config), "threshold": t, "name": "tiny", "overrides": {}, "count_run": count_run} for t in (0, 3)],
            run_name="tiny", runs_root=root / "runs-local", jobs=1, device="auto",
        )  # fmt: skip
        yield {"config": str(config), "root": root, "local": local, "ray": remote, "patch": patch}


def _weights(run) -> dict[str, object]:
    """Every tensor (as bytes) and the metadata of each .safetensors artifact, and each .npy artifact's bytes.
    (Not the .safetensors files' bytes: the Rust writer orders the metadata keys differently in each process.)"""
    from safetensors import safe_open

    contents: dict[str, object] = {}
    for path in sorted(run.artifacts_dir.rglob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as handle:
            contents[path.name] = (handle.metadata(), {k: handle.get_tensor(k).tobytes() for k in handle.keys()})
    for path in sorted(run.artifacts_dir.rglob("*.npy")):
        contents[path.name] = path.read_bytes()
    return contents


def test_a_ray_sweep_leaves_the_run_records_of_a_local_sweep(ray_and_local_sweeps):
    local_runs, remote = ray_and_local_sweeps["local"], ray_and_local_sweeps["ray"]
    assert remote.manifest()["status"] == "completed" and remote.manifest()["metrics"]["failed_runs"] == 0
    assert (remote.path / "05_compare.html").is_file() and (remote.path / "overall.csv").read_text().count("\n") == 3
    ray_runs = [open_run(p) for p in remote.manifest()["parameters"]["runs"]]
    assert [r.manifest()["threshold"] for r in ray_runs] == [0, 3]
    deterministic = ("accuracy", "f1_macro", "tokens_masked", "occurrences_masked_fraction", "final_loss")
    for here, there in zip(local_runs, ray_runs):
        mine, theirs = here.manifest(), there.manifest()
        assert theirs["status"] == "completed" and theirs["kind"] == "03_train"
        assert {k: theirs["metrics"][k] for k in deterministic} == {k: mine["metrics"][k] for k in deterministic}
        assert theirs["parameters"] == mine["parameters"] and set(theirs["inputs"]) == set(mine["inputs"])
        assert _weights(there) == _weights(here) and "projection.safetensors" in _weights(there)  # same seed, same weights
        assert (there.path / "03_train.ipynb").is_file() and (there.path / "03_train.html").is_file()
        executor = theirs["executor"]
        assert executor["executor"] == "ray" and executor["node_id"] and executor["hostname"] == theirs["machine"]["hostname"]
        assert mine["executor"]["executor"] == "local"
    # `wldetect runs` reads them unchanged.
    table = list_runs(ray_and_local_sweeps["root"] / "runs-ray")
    assert sorted(table["kind"]) == ["01_count_tokens", "03_train", "03_train", "05_compare"]
    assert set(table["status"]) == {"completed"}


def test_a_failed_ray_task_fails_only_its_run_and_the_report_names_it(ray_and_local_sweeps):
    config, root = ray_and_local_sweeps["config"], ray_and_local_sweeps["root"]
    runs_root = root / "runs-failure"
    good = {"config": config, "threshold": 1, "name": "tiny"}
    bad = {"config": config, "threshold": -1, "name": "tiny"}  # create_mask refuses it inside the notebook
    failed, completed = notebooks.ray_run_notebooks("03_train", [bad, good], run_name="tiny", runs_root=runs_root)
    assert failed.manifest()["status"] == "failed" and "threshold" in failed.manifest()["error"]
    assert completed.manifest()["status"] == "completed" and (completed.artifacts_dir / "projection.safetensors").is_file()
    baseline = open_run(ray_and_local_sweeps["ray"].manifest()["parameters"]["runs"][0])
    with pytest.raises(notebooks.WLDetectError, match=rf"1 of 3 training runs failed \({failed.run_id}: .*threshold"):
        notebooks.sweep_report([baseline, failed, completed], "tiny", runs_root=runs_root)
    (report_path,) = [p for p in runs_root.iterdir() if p.name.endswith("tiny-report")]
    report = open_run(report_path)
    assert report.manifest()["status"] == "completed" and report.manifest()["metrics"]["failed_runs"] == 1
    assert report.manifest()["parameters"]["runs"] == [str(baseline.path), str(completed.path)]
    assert f"FAILED (not compared): {failed.run_id}" in (report.path / "05_compare.ipynb").read_text()

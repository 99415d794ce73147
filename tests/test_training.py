"""Step 3 on the tiny project: the mask at initialisation, checkpoints and resume, the artifacts it writes."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_EXTRA_ROWS, TINY_LANGUAGES, counted_token_ids, module_tiny_project, tiny_vocabulary, use_cache
from safetensors.numpy import load_file
from typer.testing import CliRunner

from wldetect.config import load_model_config, load_training_config
from wldetect.errors import WLDetectError
from wldetect.steps.training import (
    LOG_INTERVAL,
    class_weights_for,
    epoch_batches,
    lr_factor,
    make_loss,
    padded_batch,
    train,
)

VOCAB = tiny_vocabulary()
V = len(VOCAB) + TINY_EXTRA_ROWS
OCCURRING_MASKED = [VOCAB.index(w) for w in ("cat", "chat", "katze")]
ABSENT_MASKED = [VOCAB.index("[CLS]"), V - 1]  # special tokens are never added; the extra rows are never produced
ABSENT_KEPT = [VOCAB.index("[SEP]"), V - 2]


def tiny_mask() -> np.ndarray:
    mask = np.ones(V, dtype=bool)
    mask[OCCURRING_MASKED + ABSENT_MASKED] = False
    return mask


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with its own cache, shared by the tests of this module (each training run is ~1 s)."""
    root = tmp_path_factory.mktemp("training-project")
    with module_tiny_project(root) as (config_path, _, patch):
        mask_path = root / "token_mask.npy"
        np.save(mask_path, tiny_mask())
        token_ids = counted_token_ids(config_path)
        result = train(config_path, output_dir=root / "masked", token_mask=mask_path, token_ids=token_ids, verbose=False)
        yield {
            "root": root, "config": config_path, "mask_path": mask_path, "token_ids": token_ids, "result": result,
            "patch": patch,
        }  # fmt: skip


@pytest.fixture
def project_env(project, monkeypatch):
    use_cache(monkeypatch, project["root"] / "cache")
    return project


def test_training_writes_a_self_contained_artifacts_directory(project_env):
    result = project_env["result"]
    directory = result.artifacts_dir
    for name in (
        "projection.safetensors",
        "lookup_table_fp32.safetensors",
        "lookup_table_fp8_e4m3fn.safetensors",
        "lookup_table_fp8_e3m4.safetensors",
        "model_config.yaml",
        "tokenizer.json",
        "training_history.csv",
        "training_summary.json",
        "token_mask.npy",
        "mask_stats.json",
    ):
        assert (directory / name).is_file(), name
    assert not list(directory.glob("*.tmp*"))  # nothing half-written left behind
    config = load_model_config(directory / "model_config.yaml")
    assert config.language_codes == ["eng_Latn", "fra_Latn", "deu_Latn"]
    assert (directory / "tokenizer.json").read_bytes() == (
        project_env["root"] / "tiny-model" / "tokenizer.json"
    ).read_bytes()
    projection = load_file(str(directory / "projection.safetensors"))
    assert projection["projection.weight"].shape == (3, 8) and projection["token_weights"].shape == (V, 1)

    assert result.completed and result.steps == result.total_steps == 16  # 120 examples / 16, two epochs
    # one history entry per LOG_INTERVAL steps, per checkpoint (every 5 steps here) and at the end: the loop
    # reads the loss back from the device only then
    assert LOG_INTERVAL == 10 and [h["step"] for h in result.history] == [5, 10, 15, 16]
    assert [h["steps"] for h in result.history] == [5, 5, 5, 1] and sum(h["examples"] for h in result.history) == 240
    assert {"loss", "lr", "examples_per_s", "grad_norm", "epoch", "tokens"} <= set(result.history[0])
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    with open(directory / "training_history.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_lookup_table_equals_the_formula_on_the_trained_weights(project_env):
    directory = project_env["result"].artifacts_dir
    embeddings = load_file(str(project_env["root"] / "tiny-model" / "model.safetensors"))["model.embed_tokens.weight"]
    projection = load_file(str(directory / "projection.safetensors"))
    expected = (embeddings.astype(np.float64) * projection["token_weights"]) @ projection["projection.weight"].T.astype(
        np.float64
    ) + projection["projection.bias"]
    from wldetect.lookup import load_lookup_table

    fp32 = load_lookup_table(directory / "lookup_table_fp32.safetensors").values
    assert fp32.shape == (V, 3)
    np.testing.assert_allclose(fp32, expected, rtol=1e-5, atol=1e-5)
    # masked tokens that never occur keep weight 0, so their rows are exactly the bias
    np.testing.assert_array_equal(fp32[ABSENT_MASKED], np.tile(projection["projection.bias"], (2, 1)))
    for fmt in ("e3m4", "e4m3fn"):
        table = load_lookup_table(directory / f"lookup_table_fp8_{fmt}.safetensors")
        assert np.isfinite(table.values).all()
        assert np.abs(table.values - fp32).max() <= np.abs(fp32).max() * 2.0**-3


def test_masked_weights_start_at_zero_and_learn_only_where_their_tokens_occur(project_env):
    weights = load_file(str(project_env["result"].artifacts_dir / "projection.safetensors"))["token_weights"].reshape(
        -1
    )
    assert np.all(weights[OCCURRING_MASKED] != 0.0)  # trainable: they moved away from 0
    assert np.all(weights[ABSENT_MASKED] == 0.0)  # no gradient, no decay: still exactly 0
    assert np.all(weights[ABSENT_KEPT] == 1.0)  # unmasked weights start at 1.0
    stats = json.loads((project_env["result"].artifacts_dir / "mask_stats.json").read_text())
    assert stats["tokens_masked"] == 5 and stats["vocab_size"] == V
    assert stats["masked_tokens_seen_in_training"] == 3
    assert stats["masked_weights_nonzero_after_training"] == 3
    assert 0 < stats["occurrences_masked_fraction"] < 1
    assert stats["source"] == str(project_env["mask_path"])


def test_preparation_reports_the_files_it_reads(project_env, capsys, tmp_path):
    result = train(
        project_env["config"], output_dir=tmp_path / "run", token_mask=project_env["mask_path"],
        token_ids=project_env["token_ids"], stop_after_steps=1,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "Token ids: " in out and "(120 examples, " in out
    # The seed's training output, in its words and order (users grep for these lines).
    seed_lines = [
        f"Loading token mask from {project_env['mask_path']}...",
        f"Mask shape: ({V},)",
        f"Tokens to zero: 5 ({5 / V * 100:.2f}%)",
        f"Tokens to train: {V - 5:,}",
        "Model parameters: ",
    ]
    positions = [out.find(line) for line in seed_lines]
    assert -1 not in positions, out
    assert positions == sorted(positions)
    # the seed's count: one weight per embedding row + the projection's weights and biases (hidden 8 here)
    n_languages = len(TINY_LANGUAGES)
    assert f"Model parameters: {V + 8 * n_languages + n_languages:,} (trainable, on cpu)" in out
    assert result.consumed["token_mask"] == project_env["mask_path"]
    assert not result.completed and not (tmp_path / "run" / "projection.safetensors").exists()


def test_a_mask_of_the_wrong_length_stops_training_before_it_starts(project_env, tmp_path):
    short = tmp_path / "short.npy"
    np.save(short, np.ones(V - 5, dtype=bool))
    with pytest.raises(WLDetectError, match=rf"Token mask shape doesn't match vocab_size.*\({V - 5},\).*{V}"):
        train(project_env["config"], output_dir=tmp_path / "run", token_mask=short, token_ids=project_env["token_ids"], verbose=False)
    assert not (tmp_path / "run").exists()


def test_resume_ends_exactly_where_an_uninterrupted_run_ends(project_env, tmp_path):
    config, ids = project_env["config"], project_env["token_ids"]  # checkpoint_interval 5, dropout 0.1: RNG state matters
    full = train(config, output_dir=tmp_path / "full", token_ids=ids, verbose=False)
    stopped = train(config, output_dir=tmp_path / "resumed", token_ids=ids, verbose=False, stop_after_steps=7)
    assert not stopped.completed and stopped.steps == 7
    assert not (tmp_path / "resumed").exists()  # nothing is swapped in before the run completes
    checkpoints = sorted(p.name for p in (tmp_path / ".resumed.staging" / "checkpoints").glob("*.pt"))
    assert checkpoints == ["checkpoint_step_00000005.pt"]  # steps 6 and 7 are lost, as in a crash
    resumed = train(config, output_dir=tmp_path / "resumed", token_ids=ids, verbose=False, resume=True)
    assert resumed.resumed_from_step == 5 and resumed.completed
    assert not (tmp_path / ".resumed.staging").exists()

    # every artifact file is byte-identical (safetensors metadata in a stable order); the history and the
    # summary record this process's timings, which differ by nature
    timed = {"training_history.csv", "training_summary.json"}
    names = sorted(p.name for p in (tmp_path / "full").iterdir() if p.is_file() and p.name not in timed)
    assert "projection.safetensors" in names and "lookup_table_fp8_e3m4.safetensors" in names
    assert names == sorted(p.name for p in (tmp_path / "resumed").iterdir() if p.is_file() and p.name not in timed)
    for name in names:
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name

    a = load_file(str(tmp_path / "full" / "projection.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "projection.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])  # bitwise on CPU
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    e3m4 = "lookup_table_fp8_e3m4.safetensors"
    np.testing.assert_array_equal(load_file(str(tmp_path / "full" / e3m4))["lookup_table"],
                                  load_file(str(tmp_path / "resumed" / e3m4))["lookup_table"])  # fmt: skip
    assert len(list((tmp_path / "full" / "checkpoints").glob("*.pt"))) == 2  # only the latest two are kept

    other_seed = load_training_config(config, {"training.seed": 4})
    different = train(other_seed, output_dir=tmp_path / "seed4", token_ids=ids, verbose=False)
    c = load_file(str(tmp_path / "seed4" / "projection.safetensors"))
    assert not np.array_equal(a["projection.weight"], c["projection.weight"])
    assert different.completed

    with pytest.raises(WLDetectError, match="differs in: training"):
        train(load_training_config(config, {"training.learning_rate": 0.01}), output_dir=tmp_path / "resumed",
              token_ids=ids, verbose=False, resume=True)  # fmt: skip


def test_threshold_builds_the_mask_from_the_counted_tokens(project_env, tmp_path):
    counting = pytest.importorskip("wldetect.steps.counting")
    result = train(project_env["config"], output_dir=tmp_path / "t", threshold=3, token_ids=project_env["token_ids"], verbose=False)
    counts = counting.count_tokens(project_env["config"], verbose=False).counts
    mask = np.load(tmp_path / "t" / "token_mask.npy")
    np.testing.assert_array_equal(mask, counts >= 3)
    assert result.mask["threshold"] == 3 and result.mask["tokens_masked"] == int((counts < 3).sum())
    # the counts training saw are the counts step 1 made
    assert result.mask["occurrences_total"] == int(counts.sum())
    with pytest.raises(WLDetectError, match="not both"):
        train(project_env["config"], threshold=3, token_mask=project_env["mask_path"], token_ids=project_env["token_ids"], verbose=False)


def test_a_share_threshold_is_resolved_on_the_counted_tokens_and_the_mask_record_names_both(project_env, tmp_path):
    """`train(threshold="x%")`, as `wldetect train --threshold x%` calls it: the mask is the resolved count's, and
    mask_stats.json (what evaluation and comparison read) names the share beside the count."""
    counting = pytest.importorskip("wldetect.steps.counting")
    from wldetect.steps.masking import resolve_threshold

    counts = counting.count_tokens(project_env["config"], verbose=False).counts
    resolved = resolve_threshold("5%", counts)
    assert resolved.count > 1 and resolved.masked_data_share <= 0.05  # masks some seen tokens, within the share
    result = train(project_env["config"], output_dir=tmp_path / "s", threshold="5%", token_ids=project_env["token_ids"], verbose=False)
    np.testing.assert_array_equal(np.load(tmp_path / "s" / "token_mask.npy"), counts >= resolved.count)
    record = json.loads((tmp_path / "s" / "mask_stats.json").read_text())
    assert (record["threshold"], record["threshold_share"]) == (resolved.count, "5%") == (result.mask["threshold"], result.mask["threshold_share"])
    assert record["occurrences_masked_fraction"] == pytest.approx(resolved.masked_data_share)


def test_cli_train_with_a_token_mask(project_env, tmp_path):
    """The seed's own command, `wldetect train --config X` with no counting step before it: step 1 runs first as
    a step of its own (here reused from the cache), then training reads its token ids."""
    from wldetect.cli import app

    runner = CliRunner()
    args = ["train", "--config", str(project_env["config"]), "--output-dir", str(tmp_path / "cli")]
    result = runner.invoke(app, args + ["--token-mask", str(project_env["mask_path"])])
    assert result.exit_code == 0, result.output
    steps = ["Step 1: count the training tokens", "Reused the cached token counts", f"Token ids: {project_env['token_ids']} ("]
    positions = [result.output.find(line) for line in steps]
    assert -1 not in positions and positions == sorted(positions), result.output
    assert "E3M4 saved: lookup_table_fp8_e3m4.safetensors (0.0 MB)" in result.output
    assert f"Tokens to zero: 5 ({5 / V * 100:.2f}%)" in result.output and f"Tokens to train: {V - 5:,}" in result.output
    assert (tmp_path / "cli" / "lookup_table_fp8_e3m4.safetensors").is_file()
    both = runner.invoke(app, args + ["--token-mask", str(project_env["mask_path"]), "--threshold", "2"])
    assert both.exit_code != 0 and "not both" in str(both.exception)

    threshold = runner.invoke(app, [*args[:3], "--output-dir", str(tmp_path / "t3"), "--threshold", "3", "--no-evaluate"])
    assert threshold.exit_code == 0, threshold.output
    assert "Step 1: count the training tokens" in threshold.output and "Tokens to zero: " in threshold.output
    assert json.loads((tmp_path / "t3" / "mask_stats.json").read_text())["threshold"] == 3


def test_training_never_counts_it_says_how_to_get_step_1s_token_ids(project_env, tmp_path, monkeypatch):
    import wldetect.steps.counting as counting

    def refuse(*args, **kwargs):
        raise AssertionError("training ran step 1 itself")

    monkeypatch.setattr(counting, "count_tokens", refuse)
    with pytest.raises(WLDetectError) as raised:
        train(project_env["config"], output_dir=tmp_path / "run", verbose=False)
    message = str(raised.value)
    assert "\n" not in message and f"wldetect count-tokens --training-config {project_env['config']}" in message
    assert "token_ids=" in message and not (tmp_path / "run").exists() and not (tmp_path / ".run.staging").exists()


# ------------------------------------------------------------------------------------------------ pieces


def test_warmup_then_cosine_to_the_floor():
    factors = [lr_factor(s, 100, 10, "cosine", 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert 0.1 <= factors[-1] < 0.11
    assert lr_factor(50, 100, 10, "constant", 0.0) == 1.0


def test_focal_loss_with_gamma_zero_is_cross_entropy_and_class_weights_are_balanced():
    from wldetect.config import TrainingSection

    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 0])
    weights = class_weights_for(TrainingSection(class_weights="balanced"), labels.numpy(), 3)
    np.testing.assert_allclose(weights.numpy(), [8 / (3 * 4), 8 / (3 * 2), 8 / (3 * 2)], rtol=1e-6)
    for w in (None, weights):
        ce = make_loss(TrainingSection(loss="cross_entropy"), w)(logits, labels)
        focal0 = make_loss(TrainingSection(loss="focal", focal_gamma=0.0), w)(logits, labels)
        torch.testing.assert_close(focal0, ce)
    focal2 = make_loss(TrainingSection(loss="focal", focal_gamma=2.0), None)(logits, labels)
    assert focal2 < make_loss(TrainingSection(), None)(logits, labels)


def test_padded_batches_are_as_long_as_their_longest_example():
    ids = np.arange(1, 11, dtype=np.int32)
    offsets = np.array([0, 3, 4, 4, 10])  # lengths 3, 1, 0, 6
    token_ids, mask = padded_batch(ids, offsets, np.array([1, 0]))
    assert token_ids.shape == (2, 3)
    np.testing.assert_array_equal(token_ids, [[4, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(mask, [[True, False, False], [True, True, True]])
    token_ids, mask = padded_batch(ids, offsets, np.array([2, 3]))
    np.testing.assert_array_equal(token_ids[1], [5, 6, 7, 8, 9, 10])
    assert not mask[0].any() and mask[1].all()


def test_each_example_is_seen_once_per_epoch_from_step_1s_token_ids(project_env, tmp_path, monkeypatch):
    import wldetect.steps.counting as counting

    monkeypatch.setattr(counting, "CHUNK_EXAMPLES", 32)  # 120 examples: 4 chunk files
    counted = counting.count_tokens(project_env["config"], output=tmp_path / "token_counts.npy", use_cache=False, verbose=False)
    corpus = counted.corpus()
    assert corpus.n_chunks == 4 and len(sorted(counted.token_ids_path.glob("chunk_*_ids.npy"))) == 4
    np.testing.assert_array_equal(corpus.token_counts(), counted.counts)  # the ids are what step 1 counted
    for epoch in (0, 1):
        seen = [rows for _, _, rows in epoch_batches(corpus, epoch, seed=3, batch_size=16)]
        assert len(seen) == 8 and sorted(np.concatenate(seen).tolist()) == list(range(len(corpus)))
    skipped = list(epoch_batches(corpus, 1, 3, 16, skip=5))
    assert len(skipped) == 3
    np.testing.assert_array_equal(skipped[0][2], list(epoch_batches(corpus, 1, 3, 16))[5][2])


def test_training_reads_step_1s_files_and_tokenises_nothing(project_env, tmp_path, monkeypatch):
    import wldetect.steps.counting as counting
    import wldetect.tokenization

    counted = counting.count_tokens(project_env["config"], output=tmp_path / "step1" / "token_counts.npy", verbose=False)

    def refuse(*args, **kwargs):
        raise AssertionError("training tokenised text: it must read step 1's token ids")

    monkeypatch.setattr(wldetect.tokenization, "encode_texts", refuse)
    monkeypatch.setattr(counting, "encode_texts", refuse)
    result = train(project_env["config"], output_dir=tmp_path / "model", token_ids=tmp_path / "step1",
                   token_mask=project_env["mask_path"], verbose=False)  # fmt: skip
    assert result.consumed["token_ids"] == counted.token_ids_path
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["token_ids"] == str(counted.token_ids_path)
    # the same examples as the fixture's run (which read the ids in the cache): the same weights
    a = load_file(str(project_env["result"].artifacts_dir / "projection.safetensors"))
    b = load_file(str(tmp_path / "model" / "projection.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])

    wrong = tmp_path / "wrong_token_ids"
    shutil.copytree(counted.token_ids_path, wrong)
    record = json.loads((wrong / "token_ids.json").read_text())
    (wrong / "token_ids.json").write_text(json.dumps(dict(record, vocab_size=V + 1)))
    with pytest.raises(WLDetectError, match=rf"token ids counted for vocab_size {V + 1}.*have {V} rows"):
        train(project_env["config"], output_dir=tmp_path / "other", token_ids=wrong, verbose=False)
    other_length = dict(record, cache_key=dict(record["cache_key"], max_sequence_length=7))
    (wrong / "token_ids.json").write_text(json.dumps(other_length))
    with pytest.raises(WLDetectError, match="token ids of other inputs than this config's \\(differ in: max_sequence_length\\)"):
        train(project_env["config"], output_dir=tmp_path / "other", token_ids=wrong, verbose=False)
    (wrong / "chunk_000000_ids.npy").write_bytes(b"\x93NUMPY")  # truncated
    (wrong / "token_ids.json").write_text(json.dumps(record))
    with pytest.raises(WLDetectError, match=r"damaged token ids: chunk_000000_ids.npy has 6 bytes, [\d,]+ recorded \(run step 1 again\)"):
        train(project_env["config"], output_dir=tmp_path / "other", token_ids=wrong, verbose=False)
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------------------ runs sharing one directory


def test_an_unmasked_run_after_a_masked_one_is_reported_as_unmasked(project_env, tmp_path, capsys):
    from wldetect.artifacts import read_mask_record

    directory = tmp_path / "run"
    shutil.copytree(project_env["result"].artifacts_dir, directory)  # a masked run's outputs and checkpoints
    assert read_mask_record(directory)["tokens_masked"] == 5
    evaluation = {"schema_version": 1, "overall": {}, "files": {"predictions": "flores_dev_predictions.csv"}}
    (directory / "flores_dev_results.json").write_text(json.dumps(evaluation))  # an earlier evaluation's outputs
    (directory / "flores_dev_predictions.csv").write_text("id\n")
    (directory / "notes.txt").write_text("the user's own file")
    (directory / "my_results.json").write_text('{"mine": true}')  # named like an evaluation's, but not one
    (directory / "checkpoints" / "mine.ckpt").write_text("the user's own checkpoint")

    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    with pytest.raises(WLDetectError, match=f"diverged.*; {directory} is unchanged"):  # a failing run changes nothing
        train(load_training_config(project_env["config"], {"training.learning_rate": 1e30}), output_dir=directory,
              token_ids=project_env["token_ids"])  # fmt: skip
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()} == before
    capsys.readouterr()

    result = train(project_env["config"], output_dir=directory, token_ids=project_env["token_ids"])
    out = capsys.readouterr().out
    assert result.completed and result.mask["tokens_masked"] == 0 and result.mask["source"] == "no mask"
    assert read_mask_record(directory)["tokens_masked"] == 0
    assert not (directory / "token_mask.npy").exists()
    stats = json.loads((directory / "mask_stats.json").read_text())  # "no mask" is recorded, not implied
    assert stats["tokens_masked"] == 0 and stats["threshold"] is None and stats["vocab_size"] == V
    assert not (directory / "flores_dev_results.json").exists()
    assert not (directory / "flores_dev_predictions.csv").exists()
    assert (directory / "notes.txt").read_text() == "the user's own file"
    assert (directory / "my_results.json").read_text() == '{"mine": true}'
    assert (directory / "checkpoints" / "mine.ckpt").read_text() == "the user's own checkpoint"
    cleared = [line for line in out.splitlines() if "previous run" in line]
    assert len(cleared) == 1 and "token_mask.npy" in cleared[0] and "notes.txt" not in cleared[0]
    assert "mine" not in cleared[0] and "checkpoints/checkpoint_step_00000015.pt" in cleared[0]
    # the fresh run's checkpoints only: the masked run's (steps 15, 16) are gone
    assert sorted(p.name for p in (directory / "checkpoints").glob("*.pt")) == [
        "checkpoint_step_00000015.pt",
        "checkpoint_step_00000016.pt",
    ]
    state = torch.load(directory / "checkpoints" / "checkpoint_step_00000016.pt", weights_only=True)
    assert state["fingerprint"]["mask"] == "none"


def test_a_fresh_run_is_not_overridden_by_an_earlier_runs_checkpoints(project_env, tmp_path):
    config, ids = project_env["config"], project_env["token_ids"]
    directory = tmp_path / "shared"
    longer = train(load_training_config(config, {"training.epochs": 4}), output_dir=directory, token_ids=ids, verbose=False)  # fmt: skip
    assert longer.steps == 32
    stopped = train(config, output_dir=directory, token_mask=project_env["mask_path"], token_ids=ids, verbose=False,
                    stop_after_steps=7)  # fmt: skip
    assert not stopped.completed
    staged = tmp_path / ".shared.staging" / "checkpoints"
    assert sorted(p.name for p in staged.glob("*.pt")) == ["checkpoint_step_00000005.pt"]
    # the completed longer run is untouched until the new run completes
    assert sorted(p.name for p in (directory / "checkpoints").glob("*.pt")) == [
        "checkpoint_step_00000030.pt",
        "checkpoint_step_00000032.pt",
    ]
    resumed = train(config, output_dir=directory, token_mask=project_env["mask_path"], token_ids=ids, verbose=False,
                    resume=True)  # fmt: skip
    assert resumed.resumed_from_step == 5 and resumed.completed and resumed.steps == 16

    uninterrupted = load_file(str(project_env["result"].artifacts_dir / "projection.safetensors"))
    b = load_file(str(directory / "projection.safetensors"))
    for key in uninterrupted:
        np.testing.assert_array_equal(uninterrupted[key], b[key])
    assert [h["loss"] for h in project_env["result"].history] == [h["loss"] for h in resumed.history]


def test_pruning_keeps_the_latest_checkpoints_of_the_current_run_only(tmp_path):
    from wldetect.steps.training import checkpoint_paths, save_checkpoint

    save_checkpoint(tmp_path, {"step": 33, "fingerprint": {"training": "other"}})
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, {"step": step, "fingerprint": {"training": "this"}})
    assert [p.name for p in checkpoint_paths(tmp_path)] == [
        "checkpoint_step_00000010.pt",
        "checkpoint_step_00000015.pt",
        "checkpoint_step_00000033.pt",  # another run's: not this run's to prune, and not counted as one of its two
    ]

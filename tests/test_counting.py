"""Step 1: counts equal an independent count of exactly the examples training sees; cache; errors; CLI."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_EXTRA_ROWS, TINY_LANGUAGES, tiny_vocabulary
from tokenizers import Tokenizer

from wldetect.errors import WLDetectError
from wldetect.steps.count_files import load_per_language_counts, per_language_paths
from wldetect.steps.counting import TokenCounter, count_tokens

V = len(tiny_vocabulary()) + TINY_EXTRA_ROWS


def write_corpus(project: Path, rows: list[tuple[str, str]]) -> None:
    with open(project / "data" / "train.jsonl", "w", encoding="utf-8") as handle:
        for text, code in rows:
            handle.write(json.dumps({"text": text, "language": code}) + "\n")


def edit_yaml(path: Path, **sections) -> None:
    data = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data))


def independent_counts(model_dir: Path, rows: list[tuple[str, str]], max_length: int | None = None):
    """collections.Counter over tokenizer.encode(...).ids: the stored padding and truncation switched off."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    total, per_language = Counter(), {code: Counter() for code in TINY_LANGUAGES}
    for text, code in rows:
        ids = tokenizer.encode(text, add_special_tokens=False).ids[:max_length]
        total.update(ids)
        per_language[code].update(ids)
    expected = np.zeros(V, dtype=np.int64)
    for token_id, n in total.items():
        expected[token_id] = n
    return expected, per_language


ROWS = [
    ("the cat sat on the mat", "eng_Latn"),
    ("a big red ball today and a dog", "eng_Latn"),
    ("zebra the cat", "eng_Latn"),  # zebra: [UNK], a real token the model sees
    ("le chat est sur le tapis", "fra_Latn"),
    ("une grande balle rouge", "fra_Latn"),
    ("die katze sitzt auf der matte", "deu_Latn"),
    ("der hund läuft nach hause", "deu_Latn"),
    ("gato gato perro", "spa_Latn"),  # not a configured language: filtered out
    ("   ", "eng_Latn"),  # blank: dropped
]
KEPT = [row for row in ROWS if row[1] in TINY_LANGUAGES and row[0].strip()]
N_TOKENS = sum(len(text.split()) for text, _ in KEPT)  # word-level tokenizer: one token per word


@pytest.fixture
def project(tiny_training_config) -> Path:
    root = tiny_training_config.parent.parent.parent
    write_corpus(root, ROWS)
    return root


def test_counts_equal_an_independent_count(project, tiny_model_dir, tmp_path):
    config = project / "params" / "training" / "tiny.yaml"
    result = count_tokens(config, output=tmp_path / "out" / "token_counts.npy", verbose=False)
    expected, per_language = independent_counts(tiny_model_dir, KEPT)

    saved = np.load(tmp_path / "out" / "token_counts.npy")
    assert saved.dtype == np.int64 and saved.shape == (V,)  # embedding rows, not the tokenizer's 47 tokens
    np.testing.assert_array_equal(saved, expected)
    np.testing.assert_array_equal(result.counts, expected)
    assert result.total_tokens == N_TOKENS == 38
    assert saved[0] == 0 and saved[2] == 0 and saved[3] == 0  # stored padding, [CLS], [SEP] never counted
    assert saved[1] == 1  # [UNK] for "zebra"
    assert not saved[V - TINY_EXTRA_ROWS :].any()
    assert result.n_examples == len(KEPT) and not result.from_cache

    matrix, languages = load_per_language_counts(tmp_path / "out" / "token_counts.npy")
    assert languages == TINY_LANGUAGES == result.languages
    assert matrix.shape == (V, len(TINY_LANGUAGES)) and matrix.dtype == np.int64
    for column, code in enumerate(languages):
        column_counts = matrix[:, column].toarray().ravel()
        assert dict((i, int(n)) for i, n in enumerate(column_counts) if n) == dict(per_language[code])
    np.testing.assert_array_equal(np.asarray(matrix.sum(axis=1)).ravel(), expected)


def test_batching_and_threads_do_not_change_counts(project, tmp_path):
    config = project / "params" / "training" / "tiny.yaml"
    runs = [
        count_tokens(config, output=tmp_path / f"c{b}{w}.npy", batch_size=b, num_workers=w, use_cache=False, verbose=False)
        for b, w in [(1, 0), (2, 3), (512, 2)]
    ]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.counts, runs[0].counts)
        assert (run.per_language != runs[0].per_language).nnz == 0


def test_truncation_at_max_sequence_length_and_balancing_are_what_training_sees(project, tiny_model_dir, tmp_path):
    edit_yaml(project / "params" / "models" / "tiny.yaml", inference={"max_sequence_length": 3})
    config = project / "params" / "training" / "tiny.yaml"
    edit_yaml(config, dataset={"max_samples_per_language": 2, "shuffle_seed": 1})
    from wldetect.config import load_training_config
    from wldetect.sources.data import prepare_training_dataset

    training_config = load_training_config(config)
    data = prepare_training_dataset(training_config.dataset, training_config.model.language_codes, verbose=False)
    seen = [(text, language) for text, language in zip(data.texts(0, len(data)), data.dataset["language"])]
    assert len(seen) == 6  # capped at 2 per language: eng_Latn loses one of its three

    result = count_tokens(training_config, output=tmp_path / "counts.npy", verbose=False)
    expected, _ = independent_counts(tiny_model_dir, seen, max_length=3)
    np.testing.assert_array_equal(result.counts, expected)
    assert result.total_tokens == 3 * 6


def test_counts_are_cached_and_the_output_is_still_written(project, tmp_path, capsys, isolated_cache):
    config = project / "params" / "training" / "tiny.yaml"
    first = count_tokens(config, output=tmp_path / "a" / "token_counts.npy")
    first_out = capsys.readouterr().out
    assert f"Using vocab_size={V} from embeddings (tokenizer reports {V - TINY_EXTRA_ROWS})" in first_out
    assert "Loaded 9 examples" in first_out and "Using 7 examples in 3 languages" in first_out
    assert f"Saved token counts to {tmp_path / 'a' / 'token_counts.npy'} (shape=({V},), dtype=int64, total_tokens={N_TOKENS})" in first_out

    second = count_tokens(config, output=tmp_path / "b" / "token_counts.npy")
    second_out = capsys.readouterr().out
    assert second.from_cache and "Reusing the token ids and counts cached" in second_out and "Loaded" not in second_out
    assert second.cache_path.parent == isolated_cache / "tokenized"
    for a, b in zip((first.counts_path, *per_language_paths(first.counts_path)), (second.counts_path, *per_language_paths(second.counts_path))):
        assert b.read_bytes() == a.read_bytes()
    assert second.n_examples == 7

    # Different truncation or different data: counted again, under another key.
    edit_yaml(project / "params" / "models" / "tiny.yaml", inference={"max_sequence_length": 2})
    truncated = count_tokens(config, output=tmp_path / "c.npy", verbose=False)
    assert not truncated.from_cache and truncated.total_tokens == 14
    write_corpus(project, ROWS[:2])
    edited = count_tokens(config, verbose=False)
    assert not edited.from_cache and edited.total_tokens == 4
    assert edited.counts_path.parent == edited.cache_path  # no output: the result points into the cache


def test_an_id_outside_the_embedding_rows_is_a_clear_error():
    counter = TokenCounter(vocab_size=5, n_languages=2, model_name="tiny")
    counter.add(np.array([0, 4, 4]), np.array([1, 2]), np.array([0, 1]))
    np.testing.assert_array_equal(counter.counts, [1, 0, 0, 0, 2])
    with pytest.raises(WLDetectError, match=r"^token id 7 is outside the embedding rows of tiny \(vocab_size=5\)"):
        counter.add(np.array([1, 7]), np.array([2]), np.array([0]))


def test_count_tokens_cli_and_its_one_line_errors(project, tmp_path, monkeypatch, capsys):
    from wldetect.cli import main

    config = project / "params" / "training" / "tiny.yaml"
    out = tmp_path / "cli" / "token_counts.npy"
    monkeypatch.setattr(sys, "argv", ["wldetect", "count-tokens", "--training-config", str(config), "--output", str(out), "--batch-size", "2"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0 and np.load(out).sum() == N_TOKENS
    assert "Saved token counts to" in capsys.readouterr().out

    missing = tmp_path / "nope.yaml"
    monkeypatch.setattr(sys, "argv", ["wldetect", "count-tokens", "--training-config", str(missing), "--output", str(tmp_path / "x.npy")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code != 0 and err == f"error: {missing}: parameter file not found\n"
    assert not (tmp_path / "x.npy").exists()


def test_the_default_counts_and_mask_live_beside_the_artifacts_and_survive_training(project, monkeypatch, capsys):
    """count-tokens and create-mask without --output write to `<artifacts_dir>-counts/`, which no training run
    into the artifacts directory touches; a mask file that would be a trained model's own is refused."""
    from wldetect.cli import main
    from wldetect.steps.training import train

    config = project / "params" / "training" / "tiny.yaml"
    artifacts, counts_dir = project / "artifacts" / "tiny", project / "artifacts" / "tiny-counts"

    def cli(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["wldetect", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return exit_info.value.code, capsys.readouterr().err

    assert cli("count-tokens", "--training-config", str(config))[0] == 0
    assert cli("create-mask", "--token-counts", str(counts_dir / "token_counts.npy"), "--threshold", "2")[0] == 0
    assert not artifacts.exists()
    before = {p.name: p.read_bytes() for p in counts_dir.iterdir() if p.is_file()}
    assert {"token_counts.npy", "token_mask.npy"} <= set(before)

    train(config, token_mask=counts_dir / "token_mask.npy", token_ids=counts_dir, verbose=False)
    train(config, token_ids=counts_dir, verbose=False)  # unmasked: the model's token_mask.npy goes, the researcher's mask stays
    assert not (artifacts / "token_mask.npy").exists() and (artifacts / "projection.safetensors").is_file()
    assert {p.name: p.read_bytes() for p in counts_dir.iterdir() if p.is_file()} == before

    # counts inside a model directory (where count-tokens used to put them): the default mask path there
    # is the model's own mask file, which the next run replaces: refused, nothing written
    (artifacts / "token_counts.npy").write_bytes(before["token_counts.npy"])
    code, err = cli("create-mask", "--token-counts", str(artifacts / "token_counts.npy"), "--threshold", "2")
    assert code == 2 and err == (
        f"error: --output {artifacts / 'token_mask.npy'}: token_mask.npy of the model in {artifacts}, which training "
        "and filter-lookup replace; write it outside that directory\n"
    )
    assert not (artifacts / "token_mask.npy").exists()


def test_the_embedded_default_end_to_end(tmp_path, embedded_default):
    """Demo config (smaller corpus): counts match a Counter over the real Gemma3 tokenizer, truncated at the
    config's max_sequence_length, with no special tokens counted."""
    from wldetect.config import load_training_config
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.models import load_tokenizer_file

    repo = Path(__file__).resolve().parent.parent
    config = load_training_config(repo / "params" / "training" / "demo.yaml", {"dataset.demo_examples_per_language": 150})
    result = count_tokens(config, output=tmp_path / "token_counts.npy", verbose=False)
    assert result.counts.shape == (262_144,) and len(result.languages) == 41

    tokenizer, _ = load_tokenizer_file(config.model.model_specs[0])
    data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=False)
    limit = config.model.inference.max_sequence_length
    expected = Counter()
    for text in data.texts(0, len(data)):
        expected.update(tokenizer.encode(text, add_special_tokens=False).ids[:limit])
    assert {i: int(n) for i, n in enumerate(result.counts) if n} == dict(expected)
    assert result.counts[[0, 1, 2]].sum() == 0  # <pad>, <eos>, <bos>


def test_language_summary_and_top_tokens(project, tiny_model_dir, tiny_training_config, tmp_path):
    from wldetect.steps.counting import language_summary, top_tokens

    result = count_tokens(tiny_training_config, verbose=False)
    cached = count_tokens(tiny_training_config, verbose=False)
    assert cached.from_cache and cached.examples_per_language == {"eng_Latn": 3, "fra_Latn": 2, "deu_Latn": 2}
    _, per_language = independent_counts(tiny_model_dir, KEPT)
    summary = language_summary(cached).set_index("language")
    for code, counter in per_language.items():
        others = set().union(*(set(c) for other, c in per_language.items() if other != code))
        assert summary.loc[code, "tokens"] == sum(counter.values())
        assert summary.loc[code, "distinct_tokens"] == len(counter)
        assert summary.loc[code, "exclusive_tokens"] == len(set(counter) - others)
    assert summary.loc["eng_Latn", "examples"] == 3 and summary.loc["eng_Latn", "tokens_per_example"] == 17 / 3
    assert summary["tokens_pct"].sum() == pytest.approx(100.0)

    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    top = top_tokens(result, tokenizer, n=3)
    vocabulary = tiny_vocabulary()
    assert list(top["token"]) == ["the", "cat", "a"] == [vocabulary[i] for i in top["token_id"]]
    assert list(top["count"]) == [3, 2, 2] and list(top["script"]) == ["LATIN"] * 3
    assert top["cumulative_pct"].iloc[-1] == pytest.approx(100 * 7 / N_TOKENS)


def test_the_default_counts_path_is_beside_the_artifacts_directory_it_names(tmp_path):
    """`<artifacts_dir>-counts/token_counts.npy`; the file system root, which has no place beside it, is a
    one-line error rather than a traceback."""
    from wldetect.config import load_training_config
    from wldetect.steps.counting import default_counts_path

    config_path = Path(__file__).resolve().parent.parent / "params" / "training" / "demo.yaml"
    assert default_counts_path(load_training_config(config_path, {"output.artifacts_dir": str(tmp_path / "m")})) == (
        tmp_path / "m-counts" / "token_counts.npy"
    )
    with pytest.raises(WLDetectError, match=r"^output.artifacts_dir /: the file system root .*give --output$"):
        default_counts_path(load_training_config(config_path, {"output.artifacts_dir": "/"}))


# ------------------------------------------------------------------ bounded memory, verified cache (#22, #19)


def _many_rows(n: int = 150, seed: int = 0) -> list[tuple[str, str]]:
    """`n` rows of distinct word sequences of the tiny vocabulary, with a blank and an unconfigured one."""
    words = {code: sorted({w for text, c in KEPT if c == code for w in text.split()}) for code in TINY_LANGUAGES}
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        code = TINY_LANGUAGES[i % 3 if i % 7 else 0]
        rows.append((" ".join(rng.choice(words[code], size=int(rng.integers(1, 9)))), code))
    return rows + [("  ", "eng_Latn"), ("gato perro", "spa_Latn")]


def test_step_1_in_small_chunks_gives_the_counts_ids_and_training_order_of_one_chunk(project, tmp_path, monkeypatch):
    """Classifying, shuffling and capping the rows 3 at a time (a chunk far smaller than the corpus) gives
    byte-identical counts and token ids, and the same training batches, as one chunk holding every row."""
    import wldetect.sources.data as data
    import wldetect.steps.counting as counting
    from wldetect.steps.count_files import TokenizedCorpus
    from wldetect.steps.training import epoch_batches

    write_corpus(project, _many_rows())
    config = project / "params" / "training" / "tiny.yaml"
    edit_yaml(config, dataset={"max_samples_per_language": 40, "shuffle_seed": 5})
    monkeypatch.setattr(counting, "CHUNK_EXAMPLES", 16)  # several token-ids chunks, so the order crosses them
    results = {}
    for chunk_rows in (3, 10**6):
        monkeypatch.setattr(data, "CHUNK_ROWS", chunk_rows)
        results[chunk_rows] = count_tokens(config, output=tmp_path / str(chunk_rows) / "token_counts.npy", use_cache=False, verbose=False)
    small, whole = results[3], results[10**6]
    assert small.n_examples == whole.n_examples == 40 + 40 + 40
    for a, b in zip((small.counts_path, *per_language_paths(small.counts_path)), (whole.counts_path, *per_language_paths(whole.counts_path))):
        assert a.read_bytes() == b.read_bytes()
    files = sorted(p.name for p in whole.token_ids_path.iterdir())
    assert len([f for f in files if f.endswith("_ids.npy")]) == 8
    assert files == sorted(p.name for p in small.token_ids_path.iterdir())
    for name in files:
        assert (small.token_ids_path / name).read_bytes() == (whole.token_ids_path / name).read_bytes(), name
    a, b = TokenizedCorpus(small.token_ids_path), TokenizedCorpus(whole.token_ids_path)
    for epoch in (0, 1):
        for (ids_a, _, rows_a), (ids_b, _, rows_b) in zip(epoch_batches(a, epoch, 1, 7), epoch_batches(b, epoch, 1, 7), strict=True):
            np.testing.assert_array_equal(ids_a, ids_b)
            np.testing.assert_array_equal(rows_a, rows_b)
            np.testing.assert_array_equal(a.labels[rows_a], b.labels[rows_b])


def _cached_entry(isolated_cache: Path) -> Path:
    (entry,) = [p for p in (isolated_cache / "tokenized").iterdir() if p.is_dir() and "." not in p.name]
    return entry / "token_counts_token_ids"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_cache_entry_is_rebuilt_saying_so_never_reused(project, tmp_path, capsys, isolated_cache, damage):
    """One chunk of the cached token ids truncated (or one byte changed, same size): the next count says
    the entry is damaged and rebuilds it, and its output holds the intact ids, not the damaged chunk."""
    config = project / "params" / "training" / "tiny.yaml"
    write_corpus(project, _many_rows())
    first = count_tokens(config, output=tmp_path / "a" / "token_counts.npy", verbose=False)
    intact = {p.name: p.read_bytes() for p in first.token_ids_path.iterdir()}
    chunk = _cached_entry(isolated_cache) / "chunk_000000_ids.npy"
    data = chunk.read_bytes()
    # The run's files are hard links to the cache's: write a new file, as a damaging copy or sync would.
    chunk.unlink()
    chunk.write_bytes(data[:-12] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))

    second = count_tokens(config, output=tmp_path / "b" / "token_counts.npy")
    out = capsys.readouterr().out
    what = f"has {len(data) - 12:,} bytes, {len(data):,} recorded" if damage == "truncate" else "differs from its recorded sha256"
    assert f"The cached token ids and counts in {_cached_entry(isolated_cache).parent} are damaged (chunk_000000_ids.npy {what}); counting again to rebuild them" in out
    assert "Reused" not in out and not second.from_cache
    assert {p.name: p.read_bytes() for p in second.token_ids_path.iterdir()} == intact
    assert (_cached_entry(isolated_cache) / "chunk_000000_ids.npy").read_bytes() == data  # the entry is whole again
    third = count_tokens(config, output=tmp_path / "c" / "token_counts.npy")
    assert third.from_cache and "are damaged" not in capsys.readouterr().out


def test_a_truncated_chunk_in_a_run_is_refused_where_it_is_read(project, tmp_path):
    from wldetect.steps.count_files import TokenizedCorpus, load_counts

    config = project / "params" / "training" / "tiny.yaml"
    result = count_tokens(config, output=tmp_path / "run" / "token_counts.npy", use_cache=False, verbose=False)
    chunk = result.token_ids_path / "chunk_000000_ids.npy"
    chunk.write_bytes(chunk.read_bytes()[:-8])
    expected = rf"^{result.token_ids_path}: damaged token ids: chunk_000000_ids.npy has \d+ bytes, \d+ recorded \(run step 1 again\)$"
    with pytest.raises(WLDetectError, match=expected):
        TokenizedCorpus(result.token_ids_path)
    with pytest.raises(WLDetectError, match=expected):
        load_counts(tmp_path / "run")  # what create-mask and train read


def test_leftover_build_folders_of_dead_processes_are_removed_on_the_next_write(project, isolated_cache, capsys):
    import subprocess

    tokenized = isolated_cache / "tokenized"
    tokenized.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    leftovers = {
        "dead": tokenized / f"0123456789abcdef.tmp{dead_pid}",
        "dead_aside": tokenized / f"0123456789abcdef.damaged{dead_pid}",
        "alive": tokenized / f"0123456789abcdef.tmp{os.getpid()}",
        "other_host": tokenized / f"fedcba9876543210.tmp{dead_pid}",
        "not_ours": tokenized / f"notes.tmp{dead_pid}",
    }
    for path in leftovers.values():
        (path / "token_counts_token_ids").mkdir(parents=True)
    (leftovers["other_host"] / ".owner.json").write_text(json.dumps({"host": "elsewhere.example", "pid": dead_pid}))
    count_tokens(project / "params" / "training" / "tiny.yaml")
    out = capsys.readouterr().out
    assert not leftovers["dead"].exists() and not leftovers["dead_aside"].exists()
    assert leftovers["alive"].exists() and leftovers["other_host"].exists() and leftovers["not_ours"].exists()
    assert f"Removed 2 unfinished cache folder(s) of processes that no longer run: 0123456789abcdef.damaged{dead_pid}, 0123456789abcdef.tmp{dead_pid}" in out
    assert [p.name for p in tokenized.iterdir() if ".tmp" in p.name and str(os.getpid()) in p.name] == [leftovers["alive"].name]


def test_a_full_disk_names_the_destination_and_leaves_no_staging_folder(project, tmp_path, monkeypatch, capsys):
    """Publishing a cached count into --output on a full disk (the cache elsewhere: no hard link, a copy
    that runs out of space): the one-line error names the output, not the cache file it copied from."""
    import errno
    import shutil

    from wldetect.cli import main

    config = project / "params" / "training" / "tiny.yaml"
    count_tokens(config, verbose=False)  # the cache entry
    capsys.readouterr()
    real_copy = shutil.copyfile

    def cross_device(src, dst, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))

    def out_of_space(src, dst, **kwargs):
        real_copy(src, dst)
        raise OSError(errno.ENOSPC, "No space left on device", str(src))  # what sendfile's error names

    monkeypatch.setattr(os, "link", cross_device)
    monkeypatch.setattr(shutil, "copyfile", out_of_space)
    out = tmp_path / "full" / "token_counts.npy"
    monkeypatch.setattr(sys, "argv", ["wldetect", "count-tokens", "--training-config", str(config), "--output", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code != 0
    assert err == f"error: {out}: cannot write the token counts there (No space left on device); nothing there was changed\n"
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no .token_counts_token_ids.tmp<pid>/, no temporary file


def test_reused_counts_say_reused_never_saved(project, tmp_path, capsys):
    """What step 1 prints when its counts are cached: reused, not saved (#19); training, which only reads
    them, says which token ids it read."""
    from wldetect.config import load_training_config
    from wldetect.steps.training import prepare

    config = project / "params" / "training" / "tiny.yaml"
    count_tokens(config, verbose=False)
    counted = count_tokens(config)
    out = capsys.readouterr().out
    assert "Reused the cached token counts" in out and "Saved token counts" not in out
    prepare(load_training_config(config), counted.token_ids_path, verbose=True)
    out = capsys.readouterr().out
    assert f"Token ids: {counted.token_ids_path} (" in out and "token counts" not in out
    count_tokens(config, output=tmp_path / "o" / "token_counts.npy")
    out = capsys.readouterr().out
    assert f"Reused the cached token counts, linked to {tmp_path / 'o' / 'token_counts.npy'}" in out and "Saved token counts" not in out

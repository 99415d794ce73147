"""Evaluation sets: FLORES+ through `datasets` on a locally written hub layout, FLORES-200, text files, demo."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wldetect.errors import WLDetectError
from wldetect.sources.demo import DEVSET_DIR
from wldetect.sources.evalsets import load_evaluation_set

FLORES_README = """---
configs:
- config_name: default
  data_files:
  - split: dev
    path: dev/*.parquet
  - split: devtest
    path: devtest/*.parquet
---
# FLORES+ (a local copy in the hub layout, written by the test)
"""


def write_flores_plus(root: Path, readme: bool = True) -> Path:
    """The hub layout of openlanguagedata/flores_plus: dev/<code>.parquet and devtest/<code>.parquet."""
    rows = {
        ("eng", "Latn"): ["The cat sat.", "A dog ran.", "It rains."],
        ("fra", "Latn"): ["Le chat est assis.", "Un chien court.", "Il pleut."],
        ("cmn", "Hant"): ["貓坐著。", "狗跑了。", "下雨了。"],
    }
    for split in ("dev", "devtest"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for (iso, script), texts in rows.items():
            frame = pd.DataFrame(
                {
                    "id": [1, 2, 3],
                    "iso_639_3": iso,
                    "iso_15924": script,
                    "glottocode": "none1234",
                    "text": [f"{t} ({split})" for t in texts],
                    "url": "https://example.org",
                    "domain": "wikinews",
                    "topic": "test",
                    "has_image": 0,
                    "has_hyperlink": 0,
                    "last_updated": "2.1",
                }
            )
            frame.to_parquet(root / split / f"{iso}_{script}.parquet", index=False)
    if readme:
        (root / "README.md").write_text(FLORES_README, encoding="utf-8")
    return root


@pytest.mark.parametrize("readme", [True, False], ids=["hub-readme", "bare-directory"])
def test_flores_plus_hub_layout_maps_iso_columns_to_codes(tmp_path, readme):
    root = write_flores_plus(tmp_path / "flores_plus", readme=readme)
    dev = load_evaluation_set(str(root), "dev")
    assert dev.kind == "flores_plus" and dev.name == "flores" and dev.split == "dev" and dev.stem == "flores_dev"
    assert list(dev.sentences.columns) == ["id", "language", "text"]
    assert dev.languages == ["cmn_Hant", "eng_Latn", "fra_Latn"]
    eng = dev.sentences[dev.sentences["language"] == "eng_Latn"].set_index("id")["text"]
    assert eng.to_dict() == {1: "The cat sat. (dev)", 2: "A dog ran. (dev)", 3: "It rains. (dev)"}
    devtest = load_evaluation_set(str(root), "devtest")
    assert devtest.sentences["text"].str.endswith("(devtest)").all() and len(devtest) == 9


def test_flores200_directory_and_text_directory(tmp_path):
    flores200 = tmp_path / "flores200"
    (flores200 / "dev").mkdir(parents=True)
    (flores200 / "dev" / "eng_Latn.dev").write_text("one\ntwo\n", encoding="utf-8")
    (flores200 / "dev" / "deu_Latn.dev").write_text("eins\nzwei\n", encoding="utf-8")
    loaded = load_evaluation_set(flores200, "dev")
    assert loaded.kind == "flores200" and loaded.name == "flores" and loaded.stem == "flores_dev" and len(loaded) == 4

    texts = tmp_path / "my-set"
    texts.mkdir()
    (texts / "eng_Latn.txt").write_text("first\n\nthird\n", encoding="utf-8")  # blank line 2 keeps numbering
    (texts / "fra_Latn.txt").write_text("premier\ndeuxième\ntroisième\n", encoding="utf-8")
    loaded = load_evaluation_set(texts)
    assert loaded.kind == "text_dir" and loaded.name == "my-set" and loaded.split is None and loaded.stem == "my-set"
    eng = loaded.sentences[loaded.sentences["language"] == "eng_Latn"]
    assert eng["id"].tolist() == [1, 3] and eng["text"].tolist() == ["first", "third"]
    assert any("1 blank" in note for note in loaded.notes)


def test_demo_development_set_is_the_default():
    loaded = load_evaluation_set(None)
    assert loaded.kind == "demo" and loaded.name == "devset" and loaded.split == "dev" and loaded.stem == "devset"
    assert loaded.languages == sorted(p.stem for p in DEVSET_DIR.glob("*.txt"))
    assert not loaded.sentences.duplicated(["language", "id"]).any()
    with pytest.raises(WLDetectError, match="only a dev split"):
        load_evaluation_set("demo", "devtest")


@pytest.mark.parametrize(
    "make, split, message",
    [
        (lambda d: d / "missing", "dev", "no such directory"),
        (lambda d: d, "dev", "expected <code>.txt files"),
        (lambda d: (d / "empty.txt").write_text("\n\n") and d, "dev", "no sentences found"),
        (lambda d: d, "test", "expected one of dev, devtest"),
        (lambda d: (d / "fra_Latn.txt").write_bytes(b"caf\xe9 au lait\n") and d, "dev", r"not UTF-8 text \(invalid byte at offset 3\)"),
    ],
    ids=["missing", "no-files", "empty", "bad-split", "latin-1"],
)
def test_bad_evaluation_sets_are_one_line_errors(tmp_path, make, split, message):
    target = make(tmp_path)
    with pytest.raises(WLDetectError, match=message) as info:
        load_evaluation_set(str(target), split)
    assert "\n" not in str(info.value)


def test_local_flores_plus_without_the_requested_split(tmp_path):
    root = write_flores_plus(tmp_path / "fp")
    for path in (root / "devtest").iterdir():
        path.unlink()
    (root / "devtest").rmdir()
    (root / "README.md").unlink()
    with pytest.raises(WLDetectError, match="no devtest/ split"):
        load_evaluation_set(str(root), "devtest")

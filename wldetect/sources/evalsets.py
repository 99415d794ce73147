"""Evaluation sets: parallel sentences with their gold language, as one DataFrame `id, language, text`.

Four sources, chosen by what `dataset` names:

- FLORES+ (`flores_plus`, `openlanguagedata/flores_plus`, another hub id, or a local directory in the hub
  layout, parquet files under `dev/` and `devtest/`): read with `datasets.load_dataset(name, split=...)`;
  rows carry `iso_639_3`, `iso_15924` and `text`, and the language code is `{iso_639_3}_{iso_15924}`.
  A local copy without the hub's README (whose `configs:` block declares the `dev`/`devtest` splits) is read
  with explicit `data_files`, because `datasets` would otherwise rename a `dev/` directory to `validation`.
- a FLORES-200 style directory: `dev/<code>.dev`, `devtest/<code>.devtest`, one sentence per line;
- a directory of `<code>.txt` files, one sentence per line; it has no splits;
- sets shipped with the package, by name: `pud` (500 real PUD sentences in 20 languages, `wldetect/data/pud/`,
  CC BY-SA, see its README) and `demo` (the default: the project's own development set, `sources/demo.py`).

`id` is the sentence's number within its language: the FLORES+ `id` column, or the 1-based line number of a
text file (blank lines are skipped but keep their numbers, so line N stays the same sentence in every
language). `(language, id)` is unique, which is what lets two runs be compared sentence by sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wldetect.errors import WLDetectError
from wldetect.io import read_lines
from wldetect.sources import demo

PUD_DIR = Path(__file__).resolve().parent.parent / "data" / "pud"
# Sets shipped in the package, by name: (directory of <code>.txt files, stem of the result files).
SHIPPED_SETS = {"demo": (demo.DEVSET_DIR, "devset"), "pud": (PUD_DIR, "pud")}
# Kinds whose split is part of the result files' stem (`flores_dev`, `flores_devtest`: the seed's
# `flores_dev_results.json`); every other set is named by itself alone (`pud`, `devset`, `my-set`).
SPLIT_KINDS = ("flores_plus", "flores200")
FLORES_PLUS = "openlanguagedata/flores_plus"
FLORES_ALIASES = {"flores_plus": FLORES_PLUS, "flores+": FLORES_PLUS, "flores": FLORES_PLUS}
SPLITS = ("dev", "devtest")
_CODE = re.compile(r"^[a-z]{2,3}_[A-Z][a-z]{3}$")  # eng_Latn: ISO 639-3 + ISO 15924


@dataclass
class EvaluationSet:
    """Sentences to evaluate on, and where they came from."""

    sentences: pd.DataFrame  # columns id (int64), language (str), text (str); (language, id) unique
    name: str  # the result files' stem: "flores" (+ "_<split>") for FLORES+/FLORES-200, "pud", "devset", else the directory name
    kind: str  # flores_plus | flores200 | text_dir | demo | pud
    source: str  # the resolved hub id or path
    split: str | None  # None for sources without splits (text directories, the demo set)
    notes: list[str] = field(default_factory=list)  # what was skipped on the way, for the report

    @property
    def stem(self) -> str:
        """`<set>` of the evaluation's files `<set>_results.json`, ...: `flores_dev`, `flores_devtest`, `pud`,
        `devset`, or a text directory's name (the table is appended by the evaluation when not e3m4)."""
        return output_set_stem(self.name, self.kind, self.split)

    @property
    def languages(self) -> list[str]:
        return sorted(self.sentences["language"].unique())

    def __len__(self) -> int:
        return len(self.sentences)

    def describe(self) -> str:
        split = f", split {self.split}" if self.split else ""
        return (
            f"{self.kind} {self.source}{split}: {len(self.sentences):,} sentences in {len(self.languages)} languages"
        )


def output_set_stem(name: str, kind: str | None, split: str | None) -> str:
    """The set's part of an evaluation's file names: the split is part of it for FLORES only."""
    return f"{name}_{split}" if split and kind in SPLIT_KINDS else name


def load_evaluation_set(dataset: str | Path | None = None, split: str = "dev") -> EvaluationSet:
    """The sentences of an evaluation set named by a hub id, an alias, a local directory, or `demo`."""
    if split not in SPLITS:
        raise WLDetectError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    name = "demo" if dataset is None else str(dataset)
    if name in SHIPPED_SETS:
        directory, stem = SHIPPED_SETS[name]
        if split != "dev":
            raise WLDetectError(f"evaluation set {name}: the shipped set has only a dev split, not {split}")
        result = _text_directory(directory, kind=name, name=stem)
        result.split = "dev"
    elif name in FLORES_ALIASES:
        result = load_flores_plus(FLORES_ALIASES[name], split)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            result = _local_directory(path, split)
        elif path.exists():
            raise WLDetectError(f"evaluation set {name}: expected a directory, not a file")
        elif name.count("/") == 1 and not name.startswith((".", "/", "~")):
            result = load_flores_plus(name, split)
        else:
            raise WLDetectError(f"evaluation set {name}: no such directory, nor a hub dataset id (owner/name)")
    if result.sentences.empty:
        raise WLDetectError(f"evaluation set {result.source}: no sentences found")
    return result


def _local_directory(path: Path, split: str) -> EvaluationSet:
    split_dir = path / split
    if split_dir.is_dir() and any(split_dir.rglob("*.parquet")):
        return load_flores_plus(str(path), split)
    if split_dir.is_dir() and any(split_dir.glob(f"*.{split}")):
        return _flores200_directory(path, split)
    if any(path.glob("*.txt")):
        return _text_directory(path, kind="text_dir", name=_safe_name(path.name))
    other = [s for s in SPLITS if s != split and (path / s).is_dir()]
    if other:
        raise WLDetectError(f"evaluation set {path}: no {split}/ split here (found {', '.join(other)}/)")
    raise WLDetectError(
        f"evaluation set {path}: expected <code>.txt files, {split}/<code>.{split} files (FLORES-200) "
        f"or {split}/*.parquet (FLORES+ hub layout)"
    )


def load_flores_plus(name: str, split: str) -> EvaluationSet:
    """FLORES+ (or any dataset with its columns) through `datasets.load_dataset`, from the hub or a local copy."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(name).expanduser()
    local = path.is_dir()
    try:
        if local and not _declares_configs(path):
            files = [str(p) for p in sorted((path / split).rglob("*.parquet"))]
            ds = datasets.load_dataset("parquet", data_files={split: files}, split=split)
        else:
            ds = datasets.load_dataset(str(path) if local else name, split=split)
    except Exception as err:  # network, gated repository, unknown split: all fixable by the user
        message = str(err).splitlines()[0] if str(err) else ""
        raise WLDetectError(f"evaluation set {name} (split {split}): {type(err).__name__}: {message}") from None

    columns = set(ds.column_names)
    text_column = next((c for c in ("text", "sentence") if c in columns), None)
    if text_column is None:
        raise WLDetectError(f"evaluation set {name}: no 'text' column (columns: {', '.join(ds.column_names)})")
    if {"iso_639_3", "iso_15924"} <= columns:
        frame = ds.select_columns([c for c in ("id", "iso_639_3", "iso_15924", "glottocode", text_column) if c in columns])
        frame = frame.to_pandas()
        language = frame["iso_639_3"].astype(str) + "_" + frame["iso_15924"].astype(str)
    elif "language" in columns:
        frame = ds.select_columns([c for c in ("id", "language", text_column) if c in columns]).to_pandas()
        language = frame["language"].astype(str)
    else:
        raise WLDetectError(
            f"evaluation set {name}: expected columns iso_639_3 and iso_15924 (or language); "
            f"found {', '.join(ds.column_names)}"
        )
    if "id" in frame:
        ids = pd.to_numeric(frame["id"], errors="raise").astype(np.int64)
    else:  # row number within each language
        ids = language.groupby(language).cumcount().astype(np.int64) + 1
    sentences = pd.DataFrame({"id": ids.to_numpy(), "language": language.to_numpy(), "text": frame[text_column]})
    notes = []
    sentences, skipped = _drop_blank(sentences)
    if skipped:
        notes.append(f"skipped {skipped} empty sentences")
    duplicated = sentences.duplicated(["language", "id"])
    if duplicated.any():
        codes = sorted(sentences.loc[duplicated, "language"].unique())
        notes.append(
            f"{int(duplicated.sum())} sentences share a (language, id) with an earlier one (several varieties "
            f"under one code: {', '.join(codes[:10])}); kept the first of each"
        )
        sentences = sentences[~duplicated]
    return EvaluationSet(
        sentences=sentences.reset_index(drop=True),
        name="flores",
        kind="flores_plus",
        source=str(path.resolve()) if local else name,
        split=split,
        notes=notes,
    )


def _declares_configs(path: Path) -> bool:
    """True when the directory's README has a YAML `configs:` block (as the hub's FLORES+ card has)."""
    readme = path / "README.md"
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return False
    header = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    return re.search(r"^configs:", header, flags=re.MULTILINE) is not None


def _flores200_directory(path: Path, split: str) -> EvaluationSet:
    files = sorted((path / split).glob(f"*.{split}"))
    result = _read_line_files(files, source=path, kind="flores200", name="flores")
    result.split = split
    return result


def _text_directory(path: Path, kind: str, name: str) -> EvaluationSet:
    files = sorted(path.glob("*.txt"))
    if not files and kind in SHIPPED_SETS:
        raise WLDetectError(f"shipped evaluation set {kind}: no <code>.txt files in {path}")
    return _read_line_files(files, source=path, kind=kind, name=name)


def _read_line_files(files: list[Path], source: Path, kind: str, name: str) -> EvaluationSet:
    """One sentence per line, the file stem is the language code."""
    frames = []
    notes = []
    odd = [f.stem for f in files if not _CODE.match(f.stem)]
    if odd:
        notes.append(f"file names that are not <iso639-3>_<Script> codes, used as given: {', '.join(odd[:10])}")
    for file in files:
        lines = read_lines(file, "evaluation file")
        frames.append(
            pd.DataFrame({"id": np.arange(1, len(lines) + 1, dtype=np.int64), "language": file.stem, "text": lines})
        )
    sentences = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "language", "text"])
    sentences, skipped = _drop_blank(sentences)
    if skipped:
        notes.append(f"skipped {skipped} blank lines")
    return EvaluationSet(
        sentences=sentences.reset_index(drop=True),
        name=name,
        kind=kind,
        source=str(source.resolve()),
        split=None,
        notes=notes,
    )


def _drop_blank(sentences: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    text = sentences["text"]
    keep = text.notna() & (text.astype(str).str.strip() != "")
    sentences = sentences[keep].copy()
    sentences["text"] = sentences["text"].astype(str)
    sentences["id"] = sentences["id"].astype(np.int64)
    sentences["language"] = sentences["language"].astype(str)
    return sentences, int((~keep).sum())


def _safe_name(name: str) -> str:
    """A directory name usable as a file stem (`my-set` stays `my-set`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "evalset"

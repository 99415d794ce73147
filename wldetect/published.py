"""The published WordLlamaDetect layout (`wldetect==0.1.2` on PyPI), read and written with NumPy alone.

Its users load one directory: `model_config.yaml` (one `model` or a `models:` list, `languages`, and
`inference` with `tokenizer` = a hub repo id, `max_sequence_length`, `pooling: logsumexp`) and
`lookup_table_exp.safetensors`, the table of `exp(logits)`:

- dense: tensor `dtype` = uint8 `[32]`, `lookup_table` float32 (vocab_size, n_languages), `shape` int64;
- sparse COO: `dtype` = `[33]`, `data` float32, `row` / `col` int32, `shape` int64 (2,), `threshold` float32
  `[T]`; only entries >= T are stored, every other one reads as 0.

The published loader (`wldetect.api.WLDetect` of the wheel) tokenises without special tokens, truncated at
`max_sequence_length`, sums the rows of the exp table over the tokens, takes `log(max(sum, 1e-12))` and the
softmax's argmax. `ExpTablePooler` does those float operations in the same order (rows added one after the
other, token 0 first; see `wldetect.pooling`), so a text gets bit-identical pooled logits here, alone or in
any batch. Two intended differences: a text without language evidence (no token with a letter, or, in a
sparse table, no token with any stored entry) is None here, where the published loader answers the first
language at 1/n_languages; and the best language is the argmax of the logits, where the published loader
takes it of the softmax (equal unless two logits round to the same probability).

`published_model_dir` gets the published model itself: the wheel that pip downloads into the cache (never
installed: its import name is this package's), its two model files extracted beside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, write_safetensors
from wldetect.pooling import GATHER_BYTES, TablePooler

EXP_TABLE_FILE = "lookup_table_exp.safetensors"
DENSE_DTYPE_ID = 32
SPARSE_DTYPE_ID = 33
LOG_FLOOR = 1e-12  # the published loader's floor under a sum before its log (a language no token supports)

PUBLISHED_VERSION = "0.1.2"
PUBLISHED_WHEEL = f"wldetect-{PUBLISHED_VERSION}-py3-none-any.whl"
# The wheel's sha256 as PyPI lists it: a cached file of that name that is anything else is refused.
PUBLISHED_WHEEL_SHA256 = "ff61b7db47c877d910034709a430b0b08e0c7fcfea8f0e0b433c48c90ef85492"
PUBLISHED_MODEL_FILES = ("model_config.yaml", EXP_TABLE_FILE)  # inside the wheel under wldetect/models/
_PUBLISHED_SUBDIR = "published"


class ExpTable:
    """A published exp table opened for inference, (vocab_size, n_languages) float32 values.

    Dense: the stored array. Sparse: its COO entries, which `fill` scatters into zeros as the published
    loader expands them (zeros, then the stored entries), so both pool the same numbers; the dense `exp`
    is built only when asked for. `format` is `exp` or `exp-sparse`; `threshold` the sparse file's T.
    """

    languages = None  # the file does not name its columns; model_config.yaml does

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        *,
        dense: np.ndarray | None = None,
        sparse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        threshold: float | None = None,
    ):
        self.path = path
        self.shape = shape
        self._exp = dense
        self.sparse = sparse  # (row, col, data)
        self.threshold = threshold
        self.format = "exp" if sparse is None else "exp-sparse"
        self.stored_entries = shape[0] * shape[1] if sparse is None else len(sparse[2])

    @property
    def exp(self) -> np.ndarray:
        if self._exp is None:
            self._exp = np.zeros(self.shape, dtype=np.float32)
            self.fill(self._exp)
        return self._exp

    def fill(self, zeros: np.ndarray) -> None:
        """Write the table into `zeros`, an all-zero float32 array of its shape (or a view of one)."""
        if self.sparse is None:
            zeros[...] = self._exp
        else:
            row, col, data = self.sparse
            zeros[row, col] = data

    def supported(self) -> np.ndarray:
        """bool (vocab_size,): the tokens with at least one entry above zero."""
        if self.sparse is None:
            return np.logical_or.reduce(self._exp > 0, axis=1)
        row, _, data = self.sparse
        return np.bincount(row[data > 0], minlength=self.shape[0]) > 0

    def keep_view(self, exp: np.ndarray) -> None:
        """From now on `exp` is a view of the caller's array (the pooler's rows): one float32 copy, not two."""
        self._exp, self.sparse = exp, None  # the entries are in it now

    @property
    def values(self) -> np.ndarray:
        """The table as logits, `log(exp)`: -inf where a sparse file stores nothing."""
        with np.errstate(divide="ignore"):
            return np.log(self.exp)

    def rows(self, ids: np.ndarray | slice) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.exp[ids])


def load_exp_table(path: str | Path) -> ExpTable:
    """Read `lookup_table_exp.safetensors`, dense or sparse, checked: a damaged file fails here in one line."""
    path = Path(path)
    if not path.is_file():
        raise WLDetectError(f"{path}: exp lookup table not found")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise WLDetectError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None
    if "dtype" not in tensors or tensors["dtype"].size != 1:
        raise WLDetectError(f"{path}: no 'dtype' tensor (expected [32] dense or [33] sparse COO)")
    dtype_id = int(tensors["dtype"].reshape(-1)[0])
    if dtype_id == DENSE_DTYPE_ID:
        table = _tensor(tensors, "lookup_table", path)
        if table.ndim != 2:
            raise WLDetectError(f"{path}: lookup_table of shape {table.shape}, expected (vocab_size, n_languages)")
        exp = np.ascontiguousarray(table, dtype=np.float32)
        _check_exp_values(exp, path)
        return ExpTable(path, exp.shape, dense=exp)
    if dtype_id != SPARSE_DTYPE_ID:
        raise WLDetectError(f"{path}: dtype {dtype_id}, expected 32 (dense) or 33 (sparse COO)")
    data, row, col, shape = (_tensor(tensors, name, path).reshape(-1) for name in ("data", "row", "col", "shape"))
    threshold = _tensor(tensors, "threshold", path).reshape(-1)
    if len(shape) != 2 or shape.min() < 1 or len(threshold) != 1:
        raise WLDetectError(f"{path}: sparse 'shape' {shape.tolist()} / 'threshold' {threshold.tolist()} malformed")
    if not len(data) == len(row) == len(col):
        raise WLDetectError(f"{path}: sparse data, row and col differ in length ({len(data)}, {len(row)}, {len(col)})")
    n_rows, n_columns = (int(n) for n in shape)
    if len(data) and (row.min() < 0 or row.max() >= n_rows or col.min() < 0 or col.max() >= n_columns):
        raise WLDetectError(f"{path}: sparse row/col indices outside the shape {n_rows} x {n_columns}")
    values = data.astype(np.float32)
    _check_exp_values(values, path)
    entries = (row.astype(np.intp), col.astype(np.intp), values)
    return ExpTable(path, (n_rows, n_columns), sparse=entries, threshold=float(threshold[0]))


def _tensor(tensors: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    if name not in tensors:
        raise WLDetectError(f"{path}: no {name!r} tensor (found {', '.join(sorted(tensors))})")
    return tensors[name]


def _check_exp_values(values: np.ndarray, path: Path) -> None:
    """An exp table holds finite values >= 0 (exp of a logit, 0 where masked or not stored)."""
    if values.size and not (np.isfinite(values).all() and values.min() >= 0):
        raise WLDetectError(f"{path}: the exp table holds negative, inf or NaN values (expected exp(logits) >= 0)")


class ExpTablePooler(TablePooler):
    """`TablePooler` over an exp table: the rows are the stored exp values themselves (no shift), and the
    pooled logits are `log(max(sum, 1e-12))`, the published loader's numbers bit for bit.

    A token is evidence when it has a letter (as for any model here) and, in the table, at least one entry
    above zero: a row a sparse file stores nothing of (or a token the published trainer masked to 0) adds
    nothing to any language, so a text of only such tokens has no evidence and no language.
    """

    def __init__(self, table: ExpTable, pooling: str, evidence: np.ndarray | None = None, num_threads: int = 1):
        if pooling != "logsumexp":
            raise WLDetectError(f"{table.path}: an exp table is pooled with logsumexp only, not {pooling!r}")
        self.pooling = pooling
        self._reduce = np.add.reduce
        self.source = table
        self.n_languages = table.shape[1]
        self.pad_id = table.shape[0]
        self.rows = np.zeros((table.shape[0] + 1, self.n_languages + 1), dtype=np.float32)
        if table.sparse is not None:  # scattered at flat positions: several times faster than into a 2-D view
            row, col, data = table.sparse
            self.rows.reshape(-1)[row * (self.n_languages + 1) + col] = data
        else:
            table.fill(self.rows[:-1, :-1])
        supported = table.supported()
        self.rows[:-1, -1] = supported if evidence is None else supported & evidence
        table.keep_view(self.rows[:-1, :-1])
        self._rows_per_gather = max(1, GATHER_BYTES // self.rows[0].nbytes)

    def pool_one(self, ids: list[int]) -> np.ndarray | None:
        reduced = np.add.reduce(self.rows.take(ids, axis=0), axis=0)
        if not reduced[-1]:
            return None
        sums = reduced[:-1]
        np.maximum(sums, np.float32(LOG_FLOOR), out=sums)
        return np.log(sums, out=sums)

    def _finish(self, sums, counts, ids, starts, lengths) -> np.ndarray:
        np.maximum(sums, np.float32(LOG_FLOOR), out=sums)
        return np.log(sums, out=sums)


def published_settings(config: dict, config_path: Path) -> str:
    """The checks a published `model_config.yaml` must pass here beyond languages and inference settings;
    returns `inference.tokenizer` (the hub repo the published runtime fetches its tokenizer from)."""
    model, models = config.get("model"), config.get("models")
    if (model is None) == (models is None):
        raise WLDetectError(f"{config_path}: expected exactly one of 'model' (a mapping) or 'models' (a list)")
    if models is not None and (
        not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models)
    ):
        raise WLDetectError(f"{config_path}: 'models' must be a non-empty list of model mappings")
    if model is not None and not isinstance(model, dict):
        raise WLDetectError(f"{config_path}: 'model' must be a mapping, got {type(model).__name__}")
    tokenizer = (config.get("inference") or {}).get("tokenizer", "dleemiller/WordLlamaDetect")
    if not isinstance(tokenizer, str) or not tokenizer:
        raise WLDetectError(f"{config_path}: inference.tokenizer {tokenizer!r}: expected a hub repo id")
    return tokenizer


def hub_tokenizer_file(repo_id: str, config_path: Path, pooled_dir: Path) -> Path:
    """`tokenizer.json` of the hub repo a published config names, through huggingface_hub's cache; a repo
    that cannot be reached (offline, no huggingface_hub, unknown repo) is one line saying what to pass."""
    advice = (
        f"pass a tokenizer file: WLDetect.load('{pooled_dir}', tokenizer='tokenizer.json') or --tokenizer FILE, "
        f"or put tokenizer.json in {pooled_dir}"
    )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise WLDetectError(
            f"{config_path}: inference.tokenizer {repo_id!r} is a hub repo and huggingface_hub is not installed; {advice}"
        ) from None
    try:
        return Path(hf_hub_download(repo_id, "tokenizer.json"))
    except Exception as err:  # offline and not cached, unknown or gated repo, network
        first_line = (str(err).strip().splitlines() or [""])[0]
        first_line = first_line.split(". ")[0][:200]  # its first sentence: the rest is advice for hub users
        raise WLDetectError(
            f"{config_path}: could not fetch the tokenizer of hub repo {repo_id!r} ({type(err).__name__}: "
            f"{first_line}); {advice}"
        ) from None


def is_published_layout(directory: Path, own_table_files: tuple[str, ...]) -> bool:
    """A directory in the published layout: an exp table and none of this project's table files."""
    return (directory / EXP_TABLE_FILE).is_file() and not any((directory / name).is_file() for name in own_table_files)


# ------------------------------------------------------------------------------------------------ writing


def exp_table_tensors(logits: np.ndarray, sparse_threshold: float | None = None) -> dict[str, np.ndarray]:
    """The tensors of `lookup_table_exp.safetensors` for a table of logits, as the published trainer writes
    them: dense `exp(logits)` as float32, or, with `sparse_threshold` T, the entries >= T in COO form (row-major
    order, `np.nonzero`'s)."""
    logits = np.asarray(logits, dtype=np.float32)
    with np.errstate(over="ignore"):
        exp = np.exp(logits)
    if not np.isfinite(exp).all():
        raise WLDetectError(
            f"the table's largest logit {float(logits.max()):.1f} overflows float32 in exp (> 88.7): "
            "it cannot be stored as an exp table"
        )
    shape = np.array(exp.shape, dtype=np.int64)
    if sparse_threshold is None:
        return {"lookup_table": exp, "dtype": np.array([DENSE_DTYPE_ID], np.uint8), "shape": shape}
    if not (np.isfinite(sparse_threshold) and sparse_threshold > 0):
        raise WLDetectError(f"--sparse-threshold {sparse_threshold!r}: expected a positive number")
    row, col = np.nonzero(exp >= np.float32(sparse_threshold))
    return {
        "data": exp[row, col],
        "row": row.astype(np.int32),
        "col": col.astype(np.int32),
        "shape": shape,
        "threshold": np.array([sparse_threshold], dtype=np.float32),
        "dtype": np.array([SPARSE_DTYPE_ID], np.uint8),
    }


def write_exp_table(path: Path, logits: np.ndarray, sparse_threshold: float | None = None) -> Path:
    """Write `lookup_table_exp.safetensors` atomically (byte-stable: see `wldetect.io.write_safetensors`)."""
    return write_safetensors(path, exp_table_tensors(logits, sparse_threshold))


# ------------------------------------------------------------------------------------ the published model


def published_model_dir(cache_dir: Path | None = None) -> Path:
    """The published WordLlamaDetect model as a directory: `model_config.yaml` and
    `lookup_table_exp.safetensors` extracted from the `wldetect==0.1.2` wheel.

    pip downloads the wheel once into `<wldetect cache>/published/` (the only network access, and only when
    the wheel is not there yet); it is checked against its PyPI sha256 and never installed. The directory has
    no tokenizer (the config names the hub repo `dleemiller/WordLlamaDetect`): load it with one, e.g.
    `WLDetect.load(published_model_dir(), tokenizer=<Gemma3 tokenizer.json>)`.
    """
    if cache_dir is None:
        from wldetect.config import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    root = Path(cache_dir) / _PUBLISHED_SUBDIR
    model_dir = root / f"wldetect-{PUBLISHED_VERSION}-model"
    if all((model_dir / name).is_file() for name in PUBLISHED_MODEL_FILES):
        return model_dir
    wheel = published_wheel(root)
    staging = root / f".{model_dir.name}.tmp{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in PUBLISHED_MODEL_FILES:
                with archive.open(f"wldetect/models/{name}") as source, open(staging / name, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        shutil.rmtree(model_dir, ignore_errors=True)
        os.replace(staging, model_dir)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise WLDetectError(f"{wheel}: cannot extract the published model ({err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def published_wheel(root: Path) -> Path:
    """`<root>/wldetect-0.1.2-py3-none-any.whl`, fetched with `pip download` when absent, sha256-checked."""
    wheel = root / PUBLISHED_WHEEL
    pip_arguments = ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
    pip_arguments.append(f"wldetect=={PUBLISHED_VERSION}")
    command = f"pip {' '.join(pip_arguments)} -d {root}"
    if not wheel.is_file():
        root.mkdir(parents=True, exist_ok=True)
        download = root / f".download.tmp{os.getpid()}"
        shutil.rmtree(download, ignore_errors=True)
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    *pip_arguments,
                    "-d",
                    str(download),
                    "--quiet",
                    "--disable-pip-version-check",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            fetched = download / PUBLISHED_WHEEL
            if done.returncode != 0 or not fetched.is_file():
                last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1][:200]
                raise WLDetectError(
                    f"could not fetch the published WordLlamaDetect wheel with pip ({last}); with network run "
                    f"`{command}`, or copy {PUBLISHED_WHEEL} into {root}"
                )
            with atomic_path(wheel) as tmp:
                shutil.copyfile(fetched, tmp)
        except (OSError, subprocess.SubprocessError) as err:
            raise WLDetectError(
                f"could not run pip to fetch the published WordLlamaDetect wheel ({err}); run `{command}`"
            ) from None
        finally:
            shutil.rmtree(download, ignore_errors=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != PUBLISHED_WHEEL_SHA256:
        raise WLDetectError(
            f"{wheel}: sha256 {digest[:16]}... is not that of the published wldetect {PUBLISHED_VERSION} wheel; "
            "delete it and run again"
        )
    return wheel

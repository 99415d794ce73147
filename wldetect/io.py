"""Safe file input and output: a crash never leaves a half-written artifact that looks complete, a failed or
concurrent run never destroys an earlier result, and bad input is a one-line error where it is read."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from wldetect.errors import WLDetectError
from wldetect.records import refuse_finished_run_record


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write to; it replaces `path` only if the block succeeds.

    The temporary name keeps the final suffix (`x.tmp123.npy`), so libraries that append or check
    extensions (NumPy, safetensors, matplotlib) write exactly the file they are given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def check_output_path(path: str | Path, suffixes: tuple[str, ...], what: str = "output") -> Path:
    """Refuse, before any work, an output path that writers would silently rename or cannot create.

    NumPy appends `.npy` to other names and matplotlib picks the format from the suffix, so a wrong
    suffix would leave the file somewhere the user did not ask for; a directory cannot be replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise WLDetectError(f"{what} {path} is a directory; give a file path ending in {' or '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise WLDetectError(f"{what} {path}: expected a file name ending in {' or '.join(suffixes)}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise WLDetectError(f"{what} {path}: cannot create files under {parent}")
    refuse_finished_run_record(path, what)
    return path


def read_lines(path: str | Path, what: str = "text file") -> list[str]:
    """The lines of a UTF-8 text file (split on `\\n` only, see `split_lines`); a file in another encoding is
    a one-line error naming the byte."""
    return split_lines(read_text(path, what))


# ------------------------------------------------------------------------------------------- text input


def split_lines(text: str) -> list[str]:
    """The lines of `text`, separated by `\\n` (and `\\r\\n`) only.

    `str.splitlines()` also breaks at U+2028, U+0085, `\\x1c`..`\\x1e`, `\\v`, `\\f` and a lone `\\r`, which
    can occur inside one line of real text; "one result per input line" must hold whatever a line contains.
    A final newline does not start an empty last line (as with `splitlines`).
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def decode_utf8(data: bytes, what: str) -> str:
    """`data` as UTF-8 text; anything else is a one-line error naming the offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise WLDetectError(f"{what}: not UTF-8 text (invalid byte at offset {err.start})") from None


def read_text(path: str | Path, what: str = "text file") -> str:
    """A UTF-8 text file's content; a missing, unreadable or non-UTF-8 file is a one-line error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise WLDetectError(f"{what} {path}: cannot be read ({err.strerror})") from None
    return decode_utf8(data, f"{what} {path}")


def load_npy(path: str | Path, what: str) -> tuple[Path, np.ndarray]:
    """A NumPy `.npy` array (never a pickle) and its path; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise WLDetectError(f"{path}: {what} file not found")
    try:
        return path, np.load(path, allow_pickle=False)
    except Exception as err:
        raise WLDetectError(f"{path}: not a readable NumPy .npy array ({type(err).__name__})") from None


# ------------------------------------------------------------------------------ safetensors, byte-stable


_SAFETENSORS_DTYPES = {
    "float32": "F32", "float64": "F64", "float16": "F16", "uint8": "U8", "int8": "I8",
    "int16": "I16", "int32": "I32", "int64": "I64", "bool": "BOOL",
}  # fmt: skip


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file atomically whose bytes depend only on the tensors and the metadata.

    `safetensors.save_file` serialises `__metadata__` from a Rust HashMap, whose order changes from process
    to process, so equal models gave files with different hashes (a resumed run vs an uninterrupted one).
    This writes the same format (8-byte little-endian header length, JSON header padded with spaces to a
    multiple of 8, then the tensors' bytes) with the metadata keys and the tensors in sorted order.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = _SAFETENSORS_DTYPES.get(array.dtype.name)
        if dtype is None:
            raise TypeError(f"write_safetensors: tensor {name!r} has unsupported dtype {array.dtype}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for data in blobs:
            handle.write(data)
    return Path(path)


# ------------------------------------------------------------------------------- results directories


_held_locks: dict[Path, tuple[int, int]] = {}  # lock file -> (thread id, depth) of the locks this process holds
_held_guard = threading.Lock()


def lock_file(directory: Path) -> Path:
    """The lock of a results directory: a sibling file, so it outlives the swap of the directory itself."""
    directory = Path(directory).absolute()
    return directory.parent / f".{directory.name}.lock"


def files_lock_file(directory: Path) -> Path:
    """The lock of writers that add files to `directory` (evaluation, comparison) without replacing it: inside
    it, as its parent (a home directory, /tmp) may not be writable. (`is_wldetect_internal` knows the name.)"""
    return Path(directory).absolute() / ".wldetect-outputs.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def lock_holder(lock: Path) -> int | None:
    """The pid of the live process holding `lock` on this machine; None when the lock is free or stale.

    A lock file of another machine (shared file system) counts as held: its process cannot be checked here.
    A just-created empty file (its writer has not written the pid yet) counts as held for a few seconds.
    """
    try:
        text = lock.read_text(encoding="utf-8")
        age = time.time() - lock.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    fields = text.split()
    if not fields:
        return -1 if age < 5 else None
    try:
        pid = int(fields[0])
    except ValueError:
        return None
    host = fields[1] if len(fields) > 1 else socket.gethostname()
    if host != socket.gethostname():
        return pid
    if pid == os.getpid():
        return pid if lock.absolute() in _held_locks else None
    return pid if _pid_alive(pid) else None


def _refuse_if_held(lock: Path, directory: str | Path, what: str) -> None:
    holder = lock_holder(lock)
    if holder is not None:
        who = f"process {holder}" if holder > 0 else "another process"
        raise WLDetectError(
            f"{what} {directory} is being written by {who} (lock file {lock}); wait for it to finish "
            "or use another directory"
        ) from None


@contextlib.contextmanager
def directory_lock(directory: str | Path, what: str = "output directory", lock: Path | None = None) -> Iterator[Path]:
    """Hold the lock of `directory` (a file with this process's pid) for the block.

    A second writer of the same directory is refused with a one-line error naming the holder's pid, so two
    concurrent runs never both report success while only one result survives. A lock left by a process that
    no longer exists (killed, crashed) is stale and taken over. Re-entrant within one thread. `lock`: the
    lock file (default `lock_file(directory)`).
    """
    lock = (lock or lock_file(directory)).absolute()
    thread = threading.get_ident()
    with _held_guard:
        held = _held_locks.get(lock)
        if held is not None and held[0] == thread:
            _held_locks[lock] = (thread, held[1] + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                _refuse_if_held(lock, directory, what)
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()} {socket.gethostname()}\n")
            break
        else:
            raise WLDetectError(f"{what} {directory}: could not take the lock file {lock}")
        with _held_guard:
            _held_locks[lock] = (thread, 1)
    try:
        yield lock
    finally:
        with _held_guard:
            thread_id, depth = _held_locks[lock]
            if depth > 1:
                _held_locks[lock] = (thread_id, depth - 1)
            else:
                del _held_locks[lock]
                lock.unlink(missing_ok=True)


def is_wldetect_internal(entry: Path) -> bool:
    """An entry wldetect keeps inside a results directory while writing to it (the file writers' lock, a
    file writer's staging directory): not a file of the user's, and not a reason to call the directory used."""
    return entry.name == ".wldetect-outputs.lock" or entry.name.startswith(".staging-")


def refuse_existing_file(path: str | Path, overwrite: bool, what: str = "output") -> None:
    """An existing output file (a mask, counts) is replaced only with --overwrite."""
    if Path(path).exists() and not overwrite:
        raise WLDetectError(f"{what} {path} already exists; give --overwrite to replace it")


def check_output_directory(directory: str | Path, what: str = "output directory") -> Path:
    """Refuse, before any work, an output directory that is a file or cannot be created or written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise WLDetectError(f"{what} {directory} is a file, not a directory")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise WLDetectError(f"{what} {directory}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WLDetectError(f"{what} {directory}: cannot create files under {existing} (not writable)")
    return directory


class StagedDirectory:
    """Write a results directory next to the old one and swap it in only when complete.

    Every command that writes results (train, filter-lookup, eval, compare) uses this, so a failed run
    (diverging loss, Ctrl-C, full disk, bad data) never leaves a half-written or half-deleted directory:
    either the complete new outputs are in place, or the old directory is byte-for-byte as it was.

    Two ways of writing, one lock (`directory_lock`, held from `__enter__` to `__exit__`):
    - `swap=True` (a model directory, which the command owns): outputs go to the sibling `.<name>.staging`.
      `commit(replaced)` hard-links every entry of the old directory that the new outputs do not replace
      (the user's own files; inside a directory both have, such as `checkpoints/`, file by file) into the
      staging directory, then renames old -> `.<name>.replaced-<pid>`,
      staging -> target, and deletes the old one. A crash between the two renames is completed by the
      next command that stages this directory. The staging name is fixed, so a training run stopped before
      its commit leaves its checkpoints where `--resume` finds them (`keep_on_failure`).
    - `swap=False` (files added to a directory the command does not own, e.g. evaluation files next to a
      model, or in a user's folder): outputs go to `<target>/.staging-<pid>/` and `commit()` moves each
      file into the target with `os.replace`, the last file given (a results JSON) last.
    """

    def __init__(self, target: str | Path, *, swap: bool, what: str = "output directory", keep_on_failure=None):
        self.target = Path(target)
        self.swap = swap
        self.what = what
        self.keep_on_failure = keep_on_failure
        self.staging = self.staging_path(self.target) if swap else self.target / f".staging-{os.getpid()}"
        self.committed = False
        self._lock = None

    @staticmethod
    def staging_path(target: str | Path) -> Path:
        target = Path(target)
        return target.parent / f".{target.name}.staging"

    def __enter__(self) -> StagedDirectory:
        check_output_directory(self.target, self.what)
        refuse_finished_run_record(self.target, self.what)
        # One writer at a time: a swapping writer holds the sibling lock, a file writer the one inside the
        # directory, and each refuses to start while the other kind is at work.
        own, other = lock_file(self.target), files_lock_file(self.target)
        if not self.swap:
            own, other = other, own
            self.target.mkdir(parents=True, exist_ok=True)
        if other.exists() and other.absolute() not in _held_locks:
            _refuse_if_held(other, self.target, self.what)
        self._lock = directory_lock(self.target, self.what, lock=own)
        self._lock.__enter__()
        try:
            if self.swap:
                self._complete_interrupted_swap()
            else:
                shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def discard(self) -> None:
        """Delete the staging directory (a fresh run must not inherit an interrupted run's files)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.committed:
                keep = self.keep_on_failure is not None and self.keep_on_failure(self.staging)
                if not keep:
                    shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._lock.__exit__(exc_type, exc, tb)

    def _complete_interrupted_swap(self) -> None:
        for old in self.target.parent.glob(f".{self.target.name}.replaced-*"):
            if not self.target.exists() and self.staging.is_dir():
                os.rename(self.staging, self.target)  # the commit had begun: the staging copy is complete
            if not self.target.exists():
                os.rename(old, self.target)
            else:
                shutil.rmtree(old, ignore_errors=True)

    def commit(self, replaced: Iterable[str] = (), order: Iterable[str] = ()) -> list[str]:
        """Put the staged outputs in place; return the names of the old entries they replaced.

        `replaced` (swap mode): paths relative to the old directory (`token_mask.npy`,
        `checkpoints/checkpoint_step_00000010.pt`) that belong to the outputs being replaced (an earlier
        model's files); they are dropped even when the new outputs have no file of that name. An old entry
        the new outputs also have is dropped, except a directory, which is merged (what the new one lacks is
        kept), so a run that writes `checkpoints/` never takes the user's files there with it. Every other
        old entry is kept. Returns the dropped paths. `order` (file mode): names moved last, in this order.
        """
        if self.swap:
            replaced_names = self._swap(set(replaced))
        else:
            names = sorted(p.name for p in self.staging.iterdir())
            last = [n for n in order if n in names]
            replaced_names = []
            for name in [n for n in names if n not in last] + last:
                if (self.target / name).exists():
                    replaced_names.append(name)
                os.replace(self.staging / name, self.target / name)
            shutil.rmtree(self.staging, ignore_errors=True)
        self.committed = True
        return replaced_names

    def _swap(self, replaced: set[str]) -> list[str]:
        if not self.target.exists():
            self.target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.staging, self.target)
            return []
        dropped = _keep_entries(self.target, self.staging, replaced)
        old = self.target.parent / f".{self.target.name}.replaced-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(self.target, old)
        try:
            os.rename(self.staging, self.target)
        except BaseException:  # put the old directory back: a failed commit leaves the target as it was
            os.rename(old, self.target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return dropped


def _keep_entries(old: Path, new: Path, replaced: set[str], prefix: str = "") -> list[str]:
    """Link every entry of `old` into `new` unless it is in `replaced` (paths relative to the top, `prefix`
    being `old`'s) or `new` has an entry of its name; a directory that both have, or one holding replaced
    paths, is merged entry by entry (and not left behind empty). Returns the dropped paths."""
    dropped = []
    for entry in sorted(old.iterdir()):
        path, staged = prefix + entry.name, new / entry.name
        staged_exists = staged.exists() or staged.is_symlink()
        is_dir = entry.is_dir() and not entry.is_symlink()
        if path in replaced:
            dropped.append(path)
        elif is_dir and (
            (staged.is_dir() and not staged.is_symlink())
            or (not staged_exists and any(name.startswith(path + "/") for name in replaced))
        ):
            staged.mkdir(exist_ok=True)
            dropped += _keep_entries(entry, staged, replaced, path + "/")
            if not staged_exists and not any(staged.iterdir()):
                staged.rmdir()
        elif staged_exists:
            dropped.append(path)
        else:
            _link_tree(entry, staged)
    return dropped


def _link_tree(source: Path, destination: Path) -> None:
    """Hard-link (copy where links are not possible) a file or directory tree: keeping the user's files
    across a swap costs no space and no time."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, destination, copy_function=link, symlinks=True)
    elif source.is_symlink():
        os.symlink(os.readlink(source), destination)
    else:
        link(str(source), str(destination))

"""Atomic file output: a crash never leaves a half-written artifact that looks complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


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
    from wldetect.errors import WLDetectError

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
    return path


def read_lines(path: str | Path, what: str = "text file") -> list[str]:
    """The lines of a UTF-8 text file; a file in another encoding is a one-line error naming the byte."""
    from wldetect.errors import WLDetectError

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise WLDetectError(f"{what} {path}: not UTF-8 text (invalid byte at offset {err.start})") from None
    except OSError as err:
        raise WLDetectError(f"{what} {path}: cannot be read ({err.strerror})") from None

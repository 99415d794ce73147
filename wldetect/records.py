"""The rules of a run record (`runs/<run-id>/`) that every writer must obey, in one place.

A run record is a directory with a `manifest.json`; while its notebook runs the manifest says `running`, and
once finished nothing may add to it or replace anything in it. The core's writers (`wldetect.io`: every
output path and staged directory) and the workflow's run records (`wldetect.workflow.runs`, which writes the
manifests) both need these rules; they live here, in the core, so that `io` need not import the workflow and
`runs` does not keep a copy of the manifest's name.
"""

from __future__ import annotations

import json
from pathlib import Path

from wldetect.errors import WLDetectError

MANIFEST = "manifest.json"


def owning_run(path: str | Path) -> Path | None:
    """The run record directory that holds `path` (a file a step wrote), or None for a file outside any."""
    path = Path(path).absolute()
    for parent in [path, *path.parents]:
        if (parent / MANIFEST).is_file():
            return parent
    return None


def run_record_status(manifest: Path) -> str | None:
    """The `status` a run record's manifest gives (`running`, `completed`, `failed`), or None where it cannot be
    read (being rewritten, damaged): a caller that must not write into a finished record treats None as
    finished."""
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def refuse_finished_run_record(path: str | Path, what: str = "output") -> None:
    """A path inside a run record (`runs/<id>/`) that is no longer running is refused: a run record keeps
    what its own notebook wrote, and no later command may add to it or replace it."""
    path = Path(path).absolute()
    record = owning_run(path)
    if record is None:
        return
    status = run_record_status(record / MANIFEST)
    if status != "running":
        raise WLDetectError(
            f"{what} {path}: inside the run record {record} ({status or 'unreadable'}); run records are "
            "never written into by a later command, choose a directory outside it"
        )

"""Results the store refused: kept beside the spool, never retried, never silently lost.

A result that passed validation can still be refused (a case validation missed,
or a document another client wrote). It must not hold back the rest of its run,
nor be sent again at every replay; it is written to `<spool>/rejected/<run>.ndjson`
with the reason, one JSON line per result, and a warning names that file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from evalstore.codec import encode
from evalstore.storage.client import RefusedDocument

log = logging.getLogger("evalstore")

REJECTED_DIR = "rejected"


def rejected_path(journal: Path) -> Path:
    """Where the refused results of the run journaled at `journal` are kept."""
    return journal.parent / REJECTED_DIR / journal.name


def keep_refused(journal: Path, refused: Sequence[RefusedDocument], run_id: str) -> None:
    """Append the refused results to the run's rejected file and say so in one warning.

    If even that file cannot be written, the warning says the results are lost.
    """
    if not refused:
        return
    path = rejected_path(journal)
    first = refused[0]
    what = (
        f"{len(refused)} result(s) of run {run_id} (first: test "
        f"{first.document.get('test_id')!r}: {first.reason})"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = b"".join(
            encode({"kind": "refused", "reason": item.reason, "doc": item.document})
            for item in refused
        )
        with path.open("ab") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, TypeError, ValueError) as exc:
        log.warning(
            "evalstore: the store refused %s; they are lost: cannot write %s (%s)", what, path, exc
        )
        return
    log.warning("evalstore: the store refused %s; they are kept in %s", what, path)

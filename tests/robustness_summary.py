"""The robustness figure: kinds of bad input tried, faults injected, outputs checked, and lost.

tests/conftest.py loads this plugin (pytest_plugins); robustness tests call record(), and
pytest prints one line at the end of the run, e.g.
"robustness: 60 kinds of bad input, 9 faults injected, 2345 outputs checked, 0 lost".
"Lost" counts good outputs that went missing, bad inputs without a reason, and partial files:
the tests record it before they assert it is 0, so a failing run shows how much was lost.
Under pytest-xdist each worker appends its counts to one file the controller named, and the
controller adds them up.
"""
from __future__ import annotations

import collections
import json
import os
import tempfile

SHARED_FILE = "CRY_ROBUSTNESS_FILE"   # set by the controller before its workers start

KINDS: set[str] = set()
COUNTS: collections.Counter = collections.Counter()


def record(kinds=(), faults: int = 0, checked: int = 0, lost: int = 0) -> None:
    KINDS.update(kinds)
    COUNTS.update(faults=faults, checked=checked, lost=lost)


def summary_line() -> str:
    return (f"robustness: {len(KINDS)} kinds of bad input, {COUNTS['faults']} faults injected, "
            f"{COUNTS['checked']} outputs checked, {COUNTS['lost']} lost")


def pytest_configure(config):
    if not hasattr(config, "workerinput") and SHARED_FILE not in os.environ:
        fd, path = tempfile.mkstemp(prefix="robustness-", suffix=".jsonl")
        os.close(fd)
        os.environ[SHARED_FILE] = path


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput") and (KINDS or COUNTS):
        with open(os.environ[SHARED_FILE], "a") as f:
            f.write(json.dumps({"kinds": sorted(KINDS), "counts": dict(COUNTS)}) + "\n")


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workerinput"):
        return  # the controller says it, for all workers
    path = os.environ.get(SHARED_FILE)
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                worker = json.loads(line)
                record(worker["kinds"], **worker["counts"])
        os.unlink(path)
    if KINDS or COUNTS:
        terminalreporter.write_line(summary_line())

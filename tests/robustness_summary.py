"""The robustness figure: kinds of bad input tried, faults injected, outputs checked, and lost.

tests/conftest.py loads this plugin (pytest_plugins); robustness tests call record(), and
pytest prints one line at the end of the run, e.g.
"robustness: 60 kinds of bad input, 9 faults injected, 2345 outputs checked, 0 lost".
"Lost" counts good outputs that went missing, bad inputs without a reason, and partial files:
the tests record it before they assert it is 0, so a failing run shows how much was lost.
"""
from __future__ import annotations

import collections

KINDS: set[str] = set()
COUNTS: collections.Counter = collections.Counter()


def record(kinds=(), faults: int = 0, checked: int = 0, lost: int = 0) -> None:
    KINDS.update(kinds)
    COUNTS.update(faults=faults, checked=checked, lost=lost)


def summary_line() -> str:
    return (f"robustness: {len(KINDS)} kinds of bad input, {COUNTS['faults']} faults injected, "
            f"{COUNTS['checked']} outputs checked, {COUNTS['lost']} lost")


def pytest_terminal_summary(terminalreporter):
    if KINDS or COUNTS:
        terminalreporter.write_line(summary_line())

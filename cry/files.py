"""Atomic writes and friendly errors: nothing half-written, no stack traces for user mistakes."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    The temporary name keeps the suffix (Keras and PIL look at it). On any error the
    temporary file is removed and `path` keeps its old content.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(data, path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")


def write_text(text: str, path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def run_main(main) -> None:
    """Call main() and exit with its status; user errors become one 'error:' line."""
    try:
        status = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)

"""Atomic writes and friendly errors: nothing half-written, no stack traces for user mistakes."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path


TMP_MARK = ".tmp"  # in the names of atomic_output's temporary files: .<stem>.<random>.tmp<suffix>


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask, read once on the first write: from /proc on Linux, since os.umask can
    only be read by setting it, which races with threads creating files meanwhile."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


@contextlib.contextmanager
def atomic_output(path: Path, mode: int | None = None):
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    The temporary name keeps the suffix (Keras and PIL look at it). On any error the
    temporary file is removed and `path` keeps its old content. The file gets the permissions
    open() would give it (mkstemp's are 0600), or `mode`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{TMP_MARK}{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
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


def remove_leftovers(folder: Path) -> int:
    """Delete the temporary files of writes that were killed (e.g. by SIGKILL) below folder.

    Only names atomic_output makes (.<stem>.<random>.tmp<suffix>) are touched. Returns how many.
    """
    leftovers = [p for p in Path(folder).rglob(f".*{TMP_MARK}*") if p.is_file()]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return len(leftovers)


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex, read in 1 MB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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

"""What every script sets up first, in main(): quiet libraries and one BLAS thread.

Nothing here runs at import: a script calls `setup()` before it touches TensorFlow, so a
machine without a GPU prints no CUDA error lines, and tiny matrices do not start a BLAS
thread per core that only fights the models (and the preprocessing workers) for the cores.
"""
from __future__ import annotations

import os
import signal
import sys

_LIMITS = []  # keeps threadpoolctl's limit in force for the life of the process


def setup(blas_threads: int | None = 1) -> None:
    """Call at the start of a script's main(). blas_threads None leaves BLAS as it is."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no "failed call to cuInit" on machines without a GPU
    if blas_threads is not None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(blas_threads))  # BLAS libraries loaded from now on
        from threadpoolctl import threadpool_limits

        _LIMITS.append(threadpool_limits(blas_threads, user_api="blas"))  # those loaded already (numpy's)


def keras_verbosity() -> int:
    """1 (a live bar per step) on a terminal; 2 (one line per epoch) in a pipe or a log file."""
    return 1 if sys.stdout.isatty() else 2


def stop_like_ctrl_c(signals=(signal.SIGTERM, signal.SIGHUP)) -> None:
    """SIGTERM (systemd, docker stop) and SIGHUP (the terminal closed) end a run as Ctrl-C does:
    KeyboardInterrupt, so the script says its summary, ends an open episode and closes its
    outputs. Once: a second signal during that shutdown is ignored rather than cutting it short."""
    def interrupt(signum, frame):
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        raise KeyboardInterrupt
    for number in signals:
        signal.signal(number, interrupt)

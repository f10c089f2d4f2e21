"""What the benchmark scripts share: timing, the printed table and the JSON report."""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

# Before numpy is imported anywhere: parallelism comes from worker processes, and BLAS
# threads fighting over 2 cores made one audio -> image step several times slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines would break up the tables

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cry.files import write_json  # noqa: E402

REPORT = ROOT / "reports" / "benchmarks.json"


def time_calls(fn, n: int, warmup: int = 3) -> np.ndarray:
    """Seconds taken by each of n calls of fn(), after warmup calls that are not counted."""
    for _ in range(warmup):
        fn()
    seconds = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        seconds[i] = time.perf_counter() - start
    return seconds


def median_p95_ms(seconds) -> tuple[float, float]:
    return 1000 * float(np.median(seconds)), 1000 * float(np.percentile(seconds, 95))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A plain text table: floats with 2 decimals, 3 below 1, exponent below 0.01; None is '-'."""
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "0" if v == 0 else f"{v:.1e}" if abs(v) < 0.01 else f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def target_row(name: str, value: float, minimum: float | None = None, maximum: float | None = None) -> list:
    """[name, value, target, met] for a table of targets."""
    met = (minimum is None or value >= minimum) and (maximum is None or value < maximum)
    target = f">= {minimum:g}" if minimum is not None else f"< {maximum:g}"
    return [name, value, target, "yes" if met else "NO"]


def update_report(values: dict, path: Path = REPORT) -> None:
    """Merge values (plain numbers) into the JSON report; each script owns its own keys."""
    path = Path(path)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in values.items()})  # 4 digits
    write_json(dict(sorted(report.items())), path)
    print(f"\n{len(values)} figures written to {path}")

"""Where independent jobs run: in this process, in a local pool of processes, or on a Ray cluster.

The scan's pieces and the cross-validation's trainings are pure functions of their inputs, so
any of these gives the same results; only the time differs. All three are concurrent.futures
executors (Ray's object references become futures), and `in_order` runs a stream of jobs
through one with a bounded number in flight, handing results back in the order of the jobs:
memory stays bounded however many jobs there are, and what is decided in order can be.
"""
from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cry.files import UserError

# What a worker process is told before it imports numpy or LiteRT: one thread each (the
# parallelism is the processes), and TensorFlow's C++ log lines kept out of the output.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


class InProcess(concurrent.futures.Executor):
    """Runs each job when it is submitted, here: the executor of one worker."""

    workers = 1

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result, as a pool would
            future.set_exception(exc)
        return future


def _worker_setup() -> None:
    os.environ.update(WORKER_ENV)


def local_pool(workers: int) -> concurrent.futures.Executor:
    """`workers` processes on this machine (spawned: each imports the package afresh, none
    inherits the parent's models or threads); one worker runs jobs in this process."""
    if workers < 1:
        raise UserError("--workers must be at least 1")
    if workers == 1:
        return InProcess()
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_worker_setup)
    pool.workers = workers
    return pool


class RayCluster(concurrent.futures.Executor):
    """Jobs as Ray tasks of one CPU each, on the cluster at `address` ("auto": the one this machine
    belongs to). The package goes to the workers with the job (Ray's py_modules); the files the
    jobs name (recordings, models, spectrograms) must be at the same paths on every node."""

    def __init__(self, address: str):
        import ray

        import cry

        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                     runtime_env={"py_modules": [str(Path(cry.__file__).parent)], "env_vars": WORKER_ENV})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--ray {address}: cannot join the cluster ({str(exc).splitlines()[0][:200]})") from None
        self._ray, self._remote = ray, {}
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        return self._remote[fn].remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._ray.shutdown()


def executor_for(ray_address: str | None, workers: int) -> concurrent.futures.Executor:
    """The Ray cluster when an address is given, else a local pool of `workers`."""
    return RayCluster(ray_address) if ray_address else local_pool(workers)


def in_order(executor: concurrent.futures.Executor, fn: Callable, jobs: Iterable,
             in_flight: int | None = None) -> Iterator:
    """fn(job) for every job, run by executor with at most `in_flight` at once (default: two per
    worker), yielded in the order of the jobs."""
    limit = in_flight or 2 * getattr(executor, "workers", 1)
    pending: collections.deque = collections.deque()
    for job in jobs:
        pending.append(executor.submit(fn, job))
        while len(pending) >= limit:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def mapper(executor: concurrent.futures.Executor) -> Callable:
    """A map(fn, jobs) -> list through executor, in order (what cry.reason.crossval.run_folds takes)."""
    return lambda fn, jobs: list(in_order(executor, fn, jobs, in_flight=len(jobs) or 1))

"""A real Ray cluster on this machine, on 127.0.0.1 only: what the tests and the benchmarks run
--ray against (a head and worker nodes of one CPU each, dashboard off, every port its own, so
that other clusters on the machine are not touched). A real cluster is started with `ray start`.

Each node is `ray start --block` in a session of its own; stopping sends SIGTERM to that process
(which stops the node's processes) and then kills what is left of its session, by id: never
`ray stop`, which would stop every Ray process on the machine.

Ray replaces 127.0.0.1 by the machine's own network address wherever it is given (it assumes a
cluster spans machines); the nodes are started with that replacement turned off, and drivers
get DRIVER_ENV, under which Ray takes 127.0.0.1 for this machine's address, so that every
connection stays on the loopback interface.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `ray start`, keeping 127.0.0.1 as it is given (for the nodes, --node-ip-address and --address)
RAY_START = ("import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host; "
             "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")
DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """The ports of one node, each free now; worker ports from a random range of 40."""
    low = random.randrange(20000, 40000, 50)
    return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--min-worker-port", str(low), "--max-worker-port", str(low + 40),
            "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]


class LocalCluster:
    """`nodes` Ray nodes of one CPU each on 127.0.0.1; `address` is the head's, for --ray. Use as
    a context manager, or start() and stop()."""

    def __init__(self, nodes: int = 2):
        self.nodes, self.processes = nodes, []
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a limit
        self.address = f"127.0.0.1:{free_port()}"
        self.log = Path(self.temp_dir) / "start.log"

    def _start(self, args: list[str]) -> None:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OPENBLAS_NUM_THREADS": "1",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}  # a node, even of a process that drives it (DRIVER_ENV)
        with open(self.log, "a") as log:
            command = [sys.executable, "-c", RAY_START, "start", "--block", "--num-cpus", "1", "--node-ip-address",
                       "127.0.0.1", "--disable-usage-stats", "--object-store-memory", str(100 * 2**20), *node_ports(),
                       *args]
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True))

    def start(self, timeout: float = 120) -> LocalCluster:
        host, port = self.address.rsplit(":", 1)
        self._start(["--head", "--port", port, "--include-dashboard=false", "--dashboard-port", str(free_port()),
                     "--ray-client-server-port", str(free_port()), "--temp-dir", self.temp_dir])
        deadline = time.monotonic() + timeout
        while not self._accepts(host, int(port)):  # the head's GCS: what the other nodes join
            self._check(deadline)
            time.sleep(0.2)
        for _ in range(self.nodes - 1):
            self._start(["--address", self.address])
        self._wait_for(self.nodes, deadline)
        return self

    @staticmethod
    def _accepts(host: str, port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex((host, port)) == 0

    def _check(self, deadline: float) -> None:
        if any(p.poll() is not None for p in self.processes):
            raise RuntimeError(f"a Ray node stopped while starting:\n{self.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray cluster did not come up in time:\n{self.log.read_text()[-3000:]}")

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:  # a node that did start is stopped all the same
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_for(self, nodes: int, deadline: float) -> None:
        """Until the cluster says it has `nodes` alive (asked by a driver of its own, in a process
        of its own, so that this one has not joined the cluster)."""
        until = time.time() + deadline - time.monotonic()  # the deadline on the wall clock, for that process
        code = (f"import ray, time\nray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                f"while sum(n['Alive'] for n in ray.nodes()) < {nodes} and time.time() < {until}:\n"
                "    time.sleep(0.2)\nprint(sum(n['Alive'] for n in ray.nodes()))")
        while True:
            self._check(deadline)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env={**os.environ, **DRIVER_ENV})
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(nodes)]:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):  # the worker node first, then the head
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            for pid in session_members(process.pid):  # what is left of that node's own session
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def session_members(sid: int) -> list[int]:
    """The processes of the session `sid` (a node started with start_new_session: its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
            members.append(int(stat.parent.name))
    return members

"""Helpers for the Ray backend tests: a loopback Ray cluster of two nodes, and a trainer that injects faults.

Everything here runs on 127.0.0.1 with ports that Ray binds itself or that are picked free at run time (never Redis's
6379), and cleans up only the processes it started: those in the sessions of its own ``ray start`` commands.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsity_search import DivergedError, train

# Loopback only, no usage reporting, and patient start-up timeouts: on a busy 2-core CI machine Ray's Python agents
# can take minutes to import.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_agent_register_timeout_ms": "600000", "RAY_worker_register_timeout_seconds": "600"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


# `ray start --address` runs Ray's own CLI (the `ray` script's entry point) with one guard lifted. Ray 2.60 refuses to
# start a joining node when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (scripts.py reads it as "no multi-node clusters" on any
# OS), yet only that setting keeps a node on loopback: with clusters enabled, `ray start` rewrites 127.0.0.1 in both
# --address and --node-ip-address to the host's routable IP (services.resolve_ip_for_localhost) and binds its servers
# on every interface. So the CLI module alone sees clusters enabled; Ray's services and every process the node starts
# see =0 and stay on 127.0.0.1.
_RAY_START_JOINING = (
    "import sys, types; import ray.scripts.scripts as cli; "
    "cli.ray_constants = types.SimpleNamespace(**{**vars(cli.ray_constants), 'ENABLE_RAY_CLUSTER': True}); "
    "sys.argv[0] = 'ray'; sys.exit(cli.main())")


@dataclass
class LoopbackCluster:
    """``ray start --head`` plus ``ray start --address`` on this machine, one CPU each, all on 127.0.0.1."""

    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rt", dir="/tmp")))
    port: int = field(default_factory=free_port)
    sessions: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """For the nodes and the driver: loopback only, and Ray's token authentication (on by default in Ray 2.60)
        with a token of this cluster's own instead of the one in ~/.ray."""
        return {**RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.temp_dir / "auth_token")}

    def _start(self, command: list[str], role: str) -> None:
        """Run one ``ray start`` in a session of its own: every process that node starts inherits that session, which
        is how stop() finds them all, even workers whose command line Ray has renamed (``ray::IDLE``)."""
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats",
                  # Ray binds these itself and reports the port it got; the CLI's fixed default (52365) would make
                  # two nodes on one host collide
                  "--dashboard-agent-listen-port", "0"]
        with open(self.temp_dir / f"{role}.log", "wb") as log:
            proc = subprocess.Popen([*command, *common], env=dict(os.environ, **self.env), start_new_session=True,
                                    stdout=log, stderr=subprocess.STDOUT)
            self.sessions.append(proc.pid)
            try:
                code = proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
        if code != 0:
            tail = (self.temp_dir / f"{role}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ray start ({role}) {'timed out' if code is None else f'exited {code}'}:\n{tail}")

    def start(self) -> "LoopbackCluster":
        (self.temp_dir / "auth_token").write_text(secrets.token_hex(32))
        try:
            # No --ray-client-server-port: it needs ray[client], which ray[tune] does not install. Without it no
            # Ray Client server starts; with it installed, a taken default port (10001) only stops that server.
            self._start([_ray_cli(), "start", "--head", "--port", str(self.port), "--temp-dir", str(self.temp_dir),
                         "--include-dashboard", "false"], "head")
            self._start([sys.executable, "-c", _RAY_START_JOINING, "start", "--address", self.address,
                         "--temp-dir", str(self.temp_dir / "w")], "worker")
        except BaseException:
            self.stop()  # a head without its second node must not outlive the test
            raise
        return self

    def pids(self) -> list[int]:
        """Live processes of this cluster: those in the sessions of its ``ray start`` commands, or whose command
        line names its temp folder."""
        marker = str(self.temp_dir).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                state, _, _, session = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
                if state == "Z":  # exited, waiting for a parent to reap it
                    continue
                if int(session) in self.sessions or marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def stop(self) -> None:
        for _ in range(10):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class FaultyTrain:
    """``train`` with faults for the trial that claims them (by its lambda_max; the baseline never does).

    The first sampled trial to start raises after its first epoch, once (its retry must resume at epoch 2);
    the next one diverges after its first epoch. Every report is logged to ``folder/reports.jsonl``.
    """

    folder: Path

    def _owner(self, name: str, key: float) -> bool:
        path = self.folder / name
        try:
            with open(path, "x") as f:
                f.write(repr(key))
            return True
        except FileExistsError:
            return path.read_text() == repr(key)

    def _log(self, **entry: Any) -> None:
        with open(self.folder / "reports.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def __call__(self, cfg: Any, report: Any) -> dict[str, Any]:
        key = cfg.lambda_max
        fault = key > 0 and self._owner("fault", key)
        diverge = key > 0 and not fault and self._owner("diverge", key)
        self._log(key=key, start=True, pid=os.getpid())

        def faulty_report(epoch: int, metrics: dict[str, Any]) -> None:
            self._log(key=key, epoch=epoch)
            if diverge:
                raise DivergedError(epoch, 1, float("nan"))
            report(epoch, metrics)
            if fault and not (self.folder / "fault.done").exists():
                (self.folder / "fault.done").touch()
                raise RuntimeError("injected fault after epoch 1")

        return train(cfg, faulty_report)

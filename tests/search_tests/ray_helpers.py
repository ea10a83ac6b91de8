"""Helpers for the Ray backend tests: a loopback Ray cluster of two nodes, and a trainer that injects faults.

Everything here runs on 127.0.0.1 with ports picked free at run time (never Redis's 6379), and cleans up only the
processes it started: those whose command line names the cluster's own temp folder.
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


@dataclass
class LoopbackCluster:
    """``ray start --head`` plus ``ray start --address`` on this machine, one CPU each."""

    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rt", dir="/tmp")))
    port: int = field(default_factory=free_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """For the nodes and the driver. Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 as "no multi-node clusters"
        on every OS, so this cluster allows them (each node is bound by --node-ip-address 127.0.0.1); it uses Ray's
        token authentication with a token of its own, not the one in ~/.ray."""
        return {**RAY_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.temp_dir / "auth_token")}

    def _node_ports(self) -> list[str]:
        return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--metrics-export-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
                "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]

    def start(self) -> "LoopbackCluster":
        (self.temp_dir / "auth_token").write_text(secrets.token_hex(32))
        env = dict(os.environ, **self.env)
        head = [_ray_cli(), "start", "--head", "--port", str(self.port), "--node-ip-address", "127.0.0.1",
                "--num-cpus", "1", "--num-gpus", "0", "--include-dashboard", "false",
                "--temp-dir", str(self.temp_dir), "--disable-usage-stats", *self._node_ports()]
        subprocess.run(head, check=True, capture_output=True, env=env, timeout=120)
        worker = [_ray_cli(), "start", "--address", self.address, "--node-ip-address", "127.0.0.1",
                  "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", str(self.temp_dir / "w"),
                  "--disable-usage-stats", *self._node_ports()]
        try:
            subprocess.run(worker, check=True, capture_output=True, env=env, timeout=120)
        except BaseException:
            self.stop()  # a head without its second node must not outlive the test
            raise
        return self

    def pids(self) -> list[int]:
        """Processes of this cluster: their command lines name its temp folder."""
        marker = str(self.temp_dir).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        for _ in range(3):
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

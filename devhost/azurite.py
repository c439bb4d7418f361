"""Starts and stops Azurite's table and queue services (npm package `azurite`, installed by `make`).

Each service runs in a process of its own (a Node process is one core; the two are busy at once under load).
They stop with SIGINT, the signal on which Azurite saves its in-memory database: its table service ignores
SIGTERM, and a kill loses what it acknowledged since its last save (it saves every 5 seconds).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (the same for every installation; not a secret).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SERVICES = ("table", "queue")


def end_with_parent() -> None:
    """For `preexec_fn`: on Linux, a child ends when the process that started it dies, so a crash leaves no orphan
    (the signal is SIGINT, on which Azurite saves and our workers stop)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG: saves, then ends


def connection_string(table_port: int, queue_port: int | None = None, host: str = "127.0.0.1") -> str:
    value = (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
             f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT}")
    if queue_port is not None:
        value += f";QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT}"
    return value


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class Azurite:
    """Azurite's table and queue services on loopback; in memory, or persisted in `location`."""

    def __init__(self, port: int | None = None, *, queue_port: int | None = None, location: Path | None = None,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)  # the table service's
        self.queue_port = queue_port or free_port(host)
        self.location = location
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.queue_port, self.host)

    @staticmethod
    def executable(service: str) -> str:
        local = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
        if local.exists():
            return str(local)
        found = shutil.which(f"azurite-{service}")
        if found is None:
            raise RuntimeError(f"azurite-{service} not found: run `npm ci` (make does it) in the repository root")
        return found

    def start(self, timeout: float = 30.0) -> Azurite:
        ports = {"table": self.port, "queue": self.queue_port}
        for port in ports.values():
            if port_open(self.host, port):
                raise RuntimeError(f"port {port} on {self.host} is taken: is another Azurite running?")
        try:
            for service, port in ports.items():
                self._processes[service] = self._spawn(service, port)
            deadline = time.monotonic() + timeout
            for service, port in ports.items():
                self._wait_listening(service, port, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, service: str, port: int) -> subprocess.Popen[bytes]:
        args = [self.executable(service), f"--{service}Host", self.host, f"--{service}Port", str(port),
                "--silent", "--skipApiVersionCheck", "--disableTelemetry"]
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,  # noqa: S603
                                preexec_fn=end_with_parent)

    def _wait_listening(self, service: str, port: int, deadline: float) -> None:
        process = self._processes[service]
        while not port_open(self.host, port):
            if process.poll() is not None:
                error = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
                raise RuntimeError(f"Azurite's {service} service exited with {process.returncode}: "
                                   f"{error.strip()[:500]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Azurite's {service} service did not listen on {self.host}:{port} in time")
            time.sleep(0.1)

    def kill(self, service: str) -> None:
        """Ends one service at once, as a crash would (fault tests)."""
        process = self._processes.pop(service, None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    def restart(self, service: str, timeout: float = 30.0) -> None:
        """Starts a service that was killed, on the same port."""
        port = {"table": self.port, "queue": self.queue_port}[service]
        self._processes[service] = self._spawn(service, port)
        self._wait_listening(service, port, time.monotonic() + timeout)

    def stop(self) -> None:
        processes, self._processes = self._processes, {}
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # Azurite saves its database on SIGINT
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

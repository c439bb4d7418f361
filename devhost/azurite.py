"""Starts and stops the Azurite table emulator (npm package `azurite`, installed by `make`)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (the same for every installation; not a secret).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"TableEndpoint=http://{host}:{port}/{DEV_ACCOUNT}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class Azurite:
    """The table service of Azurite on loopback; in memory, or persisted in `location`."""

    def __init__(self, port: int | None = None, *, location: Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.location = location
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.host)

    def executable(self) -> str:
        local = ROOT / "node_modules" / ".bin" / "azurite-table"
        if local.exists():
            return str(local)
        found = shutil.which("azurite-table")
        if found is None:
            raise RuntimeError("azurite-table not found: run `npm ci` (make does it) in the repository root")
        return found

    def start(self, timeout: float = 30.0) -> Azurite:
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} on {self.host} is taken: is another Azurite running?")
        args = [self.executable(), "--tableHost", self.host, "--tablePort", str(self.port),
                "--silent", "--skipApiVersionCheck", "--disableTelemetry"]
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._process.poll() is not None:
                error = (self._process.stderr.read() if self._process.stderr else b"").decode(errors="replace")
                raise RuntimeError(f"Azurite exited with {self._process.returncode}: {error.strip()[:500]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not listen on {self.host}:{self.port} within {timeout} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

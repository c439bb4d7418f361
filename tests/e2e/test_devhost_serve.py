"""`python -m devhost serve` (what `make run` starts) brings up Azurite, the identity provider and the app,
accepts a token from `python -m devhost token`, and stops everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from devhost.azurite import free_port, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_serve_runs_the_app_and_stops_cleanly(tmp_path: Path, repo_root: Path) -> None:
    port, idp_port, azurite_port = free_port(), free_port(), free_port()
    graph_port, dataverse_port = free_port(), free_port()
    env = {**os.environ, "RI_AUTHORITY_HOST": f"https://127.0.0.1:{idp_port}", "PYTHONUNBUFFERED": "1"}
    env.pop("AzureWebJobsStorage", None)
    base = [sys.executable, "-m", "devhost", "--state-dir", str(tmp_path)]
    server = subprocess.Popen([*base, "serve", "--port", str(port), "--azurite-port", str(azurite_port),
                               "--graph-port", str(graph_port), "--dataverse-port", str(dataverse_port)],
                              cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    session = requests.Session()
    session.trust_env = False
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                health = session.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert health is not None
        assert health.status_code == 200
        assert session.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5).status_code == 200

        tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
        token = subprocess.run([*base, "token", "--tenant", tenant, "--user", user, "--roles", "SystemAdministrator"],
                               cwd=repo_root, env=env, check=True, capture_output=True, text=True).stdout.strip()
        me = session.get(f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.status_code == 200, me.text
        assert me.json()["tenantId"] == tenant
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "Relationship intelligence is running" in output
    assert not port_open("127.0.0.1", azurite_port)
    assert not port_open("127.0.0.1", port)
    assert f"Graph https://127.0.0.1:{graph_port}" in output  # the data sources were up, with the demo tenant
    assert not port_open("127.0.0.1", graph_port)
    assert not port_open("127.0.0.1", dataverse_port)
    assert (tmp_path / "azurite").is_dir()  # tenants survive a restart

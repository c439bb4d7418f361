"""`python -m devhost serve` (what `make run` starts) brings up Azurite, the identity provider and the app on the
ports it is given, with a second worker process; a newcomer's walk works from the command line (consent, then
seed, which says what it stored and what was refused and why); and Ctrl-C stops everything."""

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


def test_serve_runs_the_app_and_a_newcomer_walks_through_it(tmp_path: Path, repo_root: Path) -> None:
    port, idp_port, table_port, queue_port = free_port(), free_port(), free_port(), free_port()
    graph_port, dataverse_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("AzureWebJobsStorage", "RI_AUTHORITY_HOST", "RI_CONSENT_REDIRECT_URI", "RI_CA_BUNDLE"):
        env.pop(name, None)
    base = [sys.executable, "-m", "devhost", "--state-dir", str(tmp_path)]
    server = subprocess.Popen([*base, "serve", "--port", str(port), "--idp-port", str(idp_port), "--table-port",
                               str(table_port), "--queue-port", str(queue_port), "--graph-port", str(graph_port),
                               "--dataverse-port", str(dataverse_port), "--workers", "2"],
                              cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    session = requests.Session()
    session.trust_env = False

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], cwd=repo_root, env=env, capture_output=True, text=True, timeout=300,
                              check=False)

    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                status = session.get(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert status is not None
        assert status.status_code == 200

        tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
        token = cli("token", "--tenant", tenant, "--user", user, "--roles", "SystemAdministrator").stdout.strip()
        me = session.get(f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.status_code == 200, me.text
        assert me.json()["tenantId"] == tenant

        before = cli("seed", "--tenant", tenant, "--accounts", "3", "--sellers", "3")
        assert before.returncode == 0, before.stderr
        assert "items refused: consentNotGranted" in before.stdout  # and what to do about it
        assert "devhost consent" in before.stdout
        assert "insights recomputed" in before.stdout
        consent = cli("consent", "--tenant", tenant)
        assert consent.returncode == 0, consent.stdout + consent.stderr
        assert "consent is now granted" in consent.stdout
        after = cli("seed", "--tenant", tenant, "--accounts", "3", "--sellers", "3")
        assert after.returncode == 0, after.stderr
        assert "consentNotGranted" not in after.stdout
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "Relationship intelligence is running" in output
    assert "queue triggers on 2 instance(s)" in output
    for closed in (table_port, queue_port, port, idp_port, graph_port, dataverse_port):
        assert not port_open("127.0.0.1", closed)
    assert (tmp_path / "azurite").is_dir()  # tenants survive a restart

    gone = cli("seed", "--tenant", tenant)
    assert gone.returncode == 1
    assert "the app does not answer" in gone.stderr
    assert "Traceback" not in gone.stderr

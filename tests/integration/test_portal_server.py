"""devhost.portal serves the portal's files, its config.json and MSAL's browser build with the deployed site's
headers, and packages the same for Azure Static Web Apps."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.portal import PortalConfig, PortalServer, build_site

pytestmark = pytest.mark.integration

CONFIG = PortalConfig.local("http://127.0.0.1:7071/api", "client-1", "https://127.0.0.1:7072",
                            "api://relationship-intelligence-local")


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    with PortalServer(CONFIG, port=0) as server:
        yield server


def test_the_config_tells_msal_about_the_local_authority(portal: PortalServer) -> None:
    document = requests.get(f"{portal.base_url}/config.json", timeout=5).json()
    assert document == {
        "apiBaseUrl": "http://127.0.0.1:7071/api",
        "apiScopes": ["api://relationship-intelligence-local/access_as_user"],
        "msal": {"auth": {"clientId": "client-1", "authority": "https://127.0.0.1:7072/organizations",
                          "knownAuthorities": ["127.0.0.1:7072"]},
                 "cache": {"cacheLocation": "sessionStorage"}},
    }
    azure = PortalConfig("https://func.example.net/api", "client-1", "https://login.microsoftonline.com/organizations",
                         ("api://client-1/access_as_user",)).document()
    assert "knownAuthorities" not in azure["msal"]["auth"]  # Entra ID: only the values change


def test_files_and_the_vendor_script_come_with_a_strict_csp(portal: PortalServer) -> None:
    index = requests.get(f"{portal.base_url}/", timeout=5)
    assert index.status_code == 200
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = index.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self' http://127.0.0.1:7071 https://127.0.0.1:7072" in csp
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(f"{portal.base_url}/app.js", timeout=5)
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    msal = requests.get(f"{portal.base_url}/vendor/msal-browser.min.js", timeout=5)
    assert msal.status_code == 200
    assert msal.text.startswith("/*! @azure/msal-browser v")
    assert requests.head(f"{portal.base_url}/styles.css", timeout=5).status_code == 200


def test_nothing_outside_the_portal_is_served(portal: PortalServer) -> None:
    for path in ("/../devhost/idp.py", "/%2e%2e/pyproject.toml", "/vendor/other.js", "/missing.js"):
        with socket.create_connection(("127.0.0.1", portal.port), timeout=5) as raw:  # no client-side normalising
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert raw.recv(64).startswith(b"HTTP/1.1 404"), path
    assert requests.post(f"{portal.base_url}/", timeout=5).status_code == 501


def test_the_deployable_site_has_the_same_files_and_headers(tmp_path: Path) -> None:
    out = tmp_path / "site"
    files = {p.relative_to(out).as_posix() for p in build_site(out, CONFIG)}
    assert {"index.html", "app.js", "config.json", "staticwebapp.config.json", "vendor/msal-browser.min.js"} <= files
    assert json.loads((out / "config.json").read_text()) == CONFIG.document()
    static = json.loads((out / "staticwebapp.config.json").read_text())
    assert static["globalHeaders"] == CONFIG.headers()

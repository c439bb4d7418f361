"""The dev host's command line.

  python -m devhost serve            Azurite + local identity provider + the Functions app on :7071 + the portal
                                     on :4280
  python -m devhost idp              only the local identity provider (for `func start` with Core Tools)
  python -m devhost token --tenant T --user U --roles SystemAdministrator[,…] [--app]
  python -m devhost grant --tenant T [--permissions Mail.ReadBasic.All,…]
  python -m devhost revoke --tenant T
  python -m devhost seed --tenant T --accounts 20   a realistic tenant, through the running app's sync API
  python -m devhost portal-dist --out dist/portal --api-base-url https://… --client-id … --api-scope …
                                     the portal's files for Azure Static Web Apps
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from devhost import cors
from devhost import settings as local
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider, RegisteredApp
from devhost.portal import DEFAULT_PORT as PORTAL_PORT

if TYPE_CHECKING:
    from devhost.portal import PortalServer


def _portal_addresses(port: int) -> tuple[str, ...]:
    """The portal's sign-in redirect URIs (the SPA platform of the app registration, locally)."""
    return (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/")


def _identity_provider(values: dict[str, str], state_dir: Path, portal_port: int = PORTAL_PORT) -> IdentityProvider:
    authority = urlsplit(local.effective(values, "RI_AUTHORITY_HOST", "https://127.0.0.1:7072"))
    if authority.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("RI_AUTHORITY_HOST must be a loopback https address for the local identity provider")
    audiences = [a.strip() for a in local.effective(values, "RI_API_AUDIENCES").split(",") if a.strip()]
    if not audiences:
        raise SystemExit("RI_API_AUDIENCES is empty in local.settings.json")
    redirect = local.effective(values, "RI_CONSENT_REDIRECT_URI", "http://127.0.0.1:7071/api/consent/callback")
    app = RegisteredApp(
        client_id=local.effective(values, "RI_CLIENT_ID"),
        client_secret=local.effective(values, "RI_CLIENT_SECRET"),
        redirect_uris=(redirect, redirect.replace("127.0.0.1", "localhost")),
        spa_redirect_uris=_portal_addresses(portal_port),
    )
    return IdentityProvider(state_dir / "idp", app, api_audience=audiences[0], host=authority.hostname or "127.0.0.1",
                            port=authority.port or 443)


def _wait_for_stop() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    from devhost.azurite import Azurite
    from devhost.functionhost import FunctionHost
    from shared import observability

    values = local.load_values()
    local.apply_to_environment(values)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    observability.install()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(observability.JsonFormatter())

    azurite = None
    if not args.no_azurite:
        storage = local.effective(values, "AzureWebJobsStorage")
        if storage.lower() != "usedevelopmentstorage=true":
            print("AzureWebJobsStorage is not UseDevelopmentStorage=true: not starting Azurite", file=sys.stderr)
        else:
            azurite = Azurite(args.azurite_port, location=args.state_dir / "azurite").start()
            os.environ["AzureWebJobsStorage"] = azurite.connection_string  # noqa: SIM112 - the host's name
    idp = _identity_provider(values, args.state_dir, args.portal_port).start()
    os.environ["RI_CA_BUNDLE"] = str(idp.tls.ca_cert)
    portal = None
    try:
        import function_app

        host = FunctionHost(function_app.app, host="127.0.0.1", port=args.port, route_prefix="api",
                            settings=values)
        cors.enable(host, cors.from_local_settings(local.LOCAL_SETTINGS, local.SAMPLE_SETTINGS))
        host.start()
        portal, portal_line = _start_portal(values, host.base_url, idp, args.portal_port)
        print(f"""
Relationship intelligence is running (Ctrl-C stops everything).
  portal         {portal_line}
  API            {host.base_url}/api/health   {host.base_url}/api/openapi.json
  timers         POST {host.base_url}/admin/functions/<name>
  identity       {idp.base_url}  (CA: {idp.tls.ca_cert}; your browser must trust it, see the README)
  table storage  {f"Azurite on 127.0.0.1:{azurite.port}, data in {azurite.location}" if azurite else "as configured"}
  a token        .venv/bin/python -m devhost token --tenant {uuid.UUID(int=1)} --user {uuid.UUID(int=2)} \\
                   --roles SystemAdministrator
""", flush=True)
        _wait_for_stop()
        host.stop()
    finally:
        if portal is not None:
            portal.stop()
        idp.stop()
        if azurite is not None:
            azurite.stop()
    return 0


def _start_portal(values: dict[str, str], api: str, idp: IdentityProvider,
                  port: int) -> tuple[PortalServer | None, str]:
    from devhost.portal import PortalConfig, PortalServer

    if port == 0:
        return None, "not served (--portal-port 0)"
    config = PortalConfig.local(f"{api}/api", idp.app.client_id, idp.base_url, idp.api_audience)
    try:
        portal = PortalServer(config, port=port).start()
    except OSError as exc:  # e.g. another `make run` holds the port: the API still serves
        return None, f"not served: 127.0.0.1:{port} is not free ({exc.strerror})"
    except FileNotFoundError as exc:
        return None, f"not served: {exc}"
    return portal, f"http://localhost:{portal.port}/   (sign in as a test user on the identity provider's page)"


def cmd_portal_dist(args: argparse.Namespace) -> int:
    from devhost.portal import PortalConfig, build_site

    config = PortalConfig(api_base_url=args.api_base_url.rstrip("/"), client_id=args.client_id,
                          authority=args.authority.rstrip("/"), api_scopes=tuple(args.api_scope))
    files = build_site(args.out, config)
    print(f"{len(files)} files in {args.out}; deploy them with the Static Web App's deployment token")
    return 0


def cmd_idp(args: argparse.Namespace) -> int:
    values = local.load_values()
    idp = _identity_provider(values, args.state_dir).start()
    print(f"local identity provider on {idp.base_url} (CA {idp.tls.ca_cert}); Ctrl-C stops it", flush=True)
    _wait_for_stop()
    idp.stop()
    return 0


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a GUID") from exc


def cmd_token(args: argparse.Namespace) -> int:
    values = local.load_values()
    idp = _identity_provider(values, args.state_dir)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if args.app:
        token = idp.app_token(args.tenant, args.user, roles)
    else:
        token = idp.user_token(args.tenant, args.user, roles, name=args.name,
                               lifetime_seconds=args.lifetime)
    print(token)
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    values = local.load_values()
    idp = _identity_provider(values, args.state_dir)
    permissions = [p.strip() for p in args.permissions.split(",") if p.strip()]
    idp.grants.grant(args.tenant, idp.app.client_id, permissions)
    print(f"granted {', '.join(permissions) or 'no permissions'} to {idp.app.client_id} in {args.tenant}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    values = local.load_values()
    idp = _identity_provider(values, args.state_dir)
    removed = idp.grants.revoke(args.tenant, idp.app.client_id)
    print(f"revoked consent of {idp.app.client_id} in {args.tenant}" if removed else "there was no grant")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    import requests

    from devhost.seed import generate

    values = local.load_values()
    idp = _identity_provider(values, args.state_dir)
    admin = requests.Session()
    admin.trust_env = False
    admin.headers["Authorization"] = "Bearer " + idp.user_token(args.tenant, str(uuid.UUID(int=1)),
                                                                ["SystemAdministrator"])
    connector = requests.Session()
    connector.trust_env = False
    connector.headers["Authorization"] = "Bearer " + idp.app_token(args.tenant, "devhost-seed",
                                                                   ["RelationshipIntelligence.Sync"])
    api = f"{args.base_url}/api"
    overview = admin.get(f"{api}/relationship-intelligence", timeout=30).json()
    if overview.get("status") != "enabled":
        admin.put(f"{api}/relationship-intelligence/prerequisites", timeout=30,
                  json={"salesInsightsPremium": True, "office365DataLocation": args.location}).raise_for_status()
        admin.post(f"{api}/relationship-intelligence/enable", timeout=30).raise_for_status()
    data = generate(accounts=args.accounts, sellers=args.sellers, seed=args.seed)
    for kind, items in data.items():
        for start in range(0, len(items), 1000):
            response = connector.post(f"{api}/sync/{kind}", json={"items": items[start:start + 1000]}, timeout=300)
            response.raise_for_status()
            report = response.json()
            print(f"{kind:>13}: {report['stored']} stored, {report['unchanged']} unchanged, "
                  f"{len(report['rejected'])} rejected {report['rejectedByReason'] or ''}")
    requests.post(f"{args.base_url}/admin/functions/consent_deadline", headers={"x-devhost-wait": "true"},
                  timeout=600).raise_for_status()
    print("insights recomputed; try GET /api/insights/opportunity?needsAttention=true with a seller token")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=local.STATE_DIR, help="git-ignored state folder")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run Azurite, the identity provider and the Functions app")
    serve.add_argument("--port", type=int, default=7071)
    serve.add_argument("--azurite-port", type=int, default=10002)
    serve.add_argument("--no-azurite", action="store_true", help="use storage that is already running")
    serve.add_argument("--portal-port", type=int, default=PORTAL_PORT, help="the admin portal (0: not served)")
    serve.set_defaults(run=cmd_serve)

    dist = sub.add_parser("portal-dist", help="write the portal's deployable files (Azure Static Web Apps)")
    dist.add_argument("--out", type=Path, default=Path("dist/portal"))
    dist.add_argument("--api-base-url", required=True, help="https://<function app>.azurewebsites.net/api")
    dist.add_argument("--client-id", required=True, help="the app registration's client id")
    dist.add_argument("--api-scope", action="append", required=True, help="api://<client id>/access_as_user")
    dist.add_argument("--authority", default="https://login.microsoftonline.com/organizations")
    dist.set_defaults(run=cmd_portal_dist)

    sub.add_parser("idp", help="run only the local identity provider").set_defaults(run=cmd_idp)

    token = sub.add_parser("token", help="print an access token for this API")
    token.add_argument("--tenant", type=_guid, required=True)
    token.add_argument("--user", type=_guid, required=True, help="object id (oid) of the user or app")
    token.add_argument("--roles", default="", help="comma-separated app roles, e.g. SystemAdministrator")
    token.add_argument("--name", default=None)
    token.add_argument("--lifetime", type=int, default=3600, help="seconds")
    token.add_argument("--app", action="store_true", help="an app-only token (data connector) instead of a user's")
    token.set_defaults(run=cmd_token)

    grant = sub.add_parser("grant", help="record an admin-consent grant (as if the admin accepted)")
    grant.add_argument("--tenant", type=_guid, required=True)
    grant.add_argument("--permissions", default=",".join(DEFAULT_GRAPH_PERMISSIONS))
    grant.set_defaults(run=cmd_grant)

    revoke = sub.add_parser("revoke", help="remove the grant (simulates a withdrawn consent)")
    revoke.add_argument("--tenant", type=_guid, required=True)
    revoke.set_defaults(run=cmd_revoke)

    seed = sub.add_parser("seed", help="load a realistic, deterministic tenant into the running app")
    seed.add_argument("--tenant", type=_guid, required=True)
    seed.add_argument("--accounts", type=int, default=20)
    seed.add_argument("--sellers", type=int, default=8)
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--location", default="FR", help="Office 365 data location set when enabling")
    seed.add_argument("--base-url", default="http://127.0.0.1:7071")
    seed.set_defaults(run=cmd_seed)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

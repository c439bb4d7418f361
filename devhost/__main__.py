"""The dev host's command line.

  python -m devhost serve            Azurite + local identity provider + the Functions app on :7071, and the
                                     local Graph (:7073) and Dataverse (:7074) with a demo organisation
  python -m devhost idp              only the local identity provider (for `func start` with Core Tools)
  python -m devhost token --tenant T --user U --roles SystemAdministrator[,…] [--app]
  python -m devhost grant --tenant T [--permissions Mail.ReadBasic.All,…]
  python -m devhost revoke --tenant T
  python -m devhost seed --tenant T --accounts 20   a realistic tenant, through the running app's sync API
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
from typing import Any
from urllib.parse import urlsplit

from devhost import settings as local
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider, RegisteredApp


def _identity_provider(values: dict[str, str], state_dir: Path) -> IdentityProvider:
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
    idp = _identity_provider(values, args.state_dir).start()
    os.environ["RI_CA_BUNDLE"] = str(idp.tls.ca_cert)
    graph, dataverse, environment = _data_sources(idp, args)
    try:
        import function_app

        host = FunctionHost(function_app.app, host="127.0.0.1", port=args.port, route_prefix="api",
                            settings=values)
        host.start()
        print(f"""
Relationship intelligence is running (Ctrl-C stops everything).
  API            {host.base_url}/api/health   {host.base_url}/api/openapi.json
  timers         POST {host.base_url}/admin/functions/<name>
  identity       {idp.base_url}  (CA: {idp.tls.ca_cert})
  data sources   {f"Graph {graph.base_url}, Dataverse {environment} (tenant {DEMO_TENANT})" if graph and dataverse
                  else "not started"}
  table storage  {f"Azurite on 127.0.0.1:{azurite.port}, data in {azurite.location}" if azurite else "as configured"}
  a token        .venv/bin/python -m devhost token --tenant {uuid.UUID(int=1)} --user {uuid.UUID(int=2)} \\
                   --roles SystemAdministrator
""", flush=True)
        _wait_for_stop()
        host.stop()
    finally:
        for source in (graph, dataverse):
            if source is not None:
                source.stop()
        idp.stop()
        if azurite is not None:
            azurite.stop()
    return 0


DEMO_TENANT = str(uuid.UUID(int=1))


def _data_sources(idp: IdentityProvider, args: argparse.Namespace) -> tuple[Any, Any, str | None]:
    """The local Graph and Dataverse, holding the demo organisation of tenant …0001 (in memory, the same each
    start). A port in use leaves them out with a warning: the app itself does not need them to start."""
    from devhost import organisation
    from devhost.dataverse import LocalDataverse
    from devhost.graph import LocalGraph

    try:
        graph = LocalGraph(idp, port=args.graph_port).start()
    except OSError as exc:
        print(f"local Graph not started on port {args.graph_port}: {exc}", file=sys.stderr)
        return None, None, None
    try:
        dataverse = LocalDataverse(idp, port=args.dataverse_port).start()
    except OSError as exc:
        print(f"local Dataverse not started on port {args.dataverse_port}: {exc}", file=sys.stderr)
        graph.stop()
        return None, None, None
    org = organisation.generate(DEMO_TENANT, environment="contoso")
    organisation.load(org, graph, dataverse, application_id=idp.app.client_id)
    return graph, dataverse, org.environment_url


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
    serve.add_argument("--graph-port", type=int, default=7073, help="the local Microsoft Graph")
    serve.add_argument("--dataverse-port", type=int, default=7074, help="the local Dataverse")
    serve.set_defaults(run=cmd_serve)

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

"""The dev host's command line.

  python -m devhost serve [--workers N]   Azurite, the local identity provider, Graph and Dataverse (with a demo
                                          organisation), the Functions app and the portal (make run)
  python -m devhost worker                another instance running only the queue triggers (as Azure scales out)
  python -m devhost idp                   only the local identity provider (for `func start` with Core Tools)
  python -m devhost token --tenant T --user U --roles SystemAdministrator[,…] [--app]
  python -m devhost consent --tenant T    the Microsoft 365 admin's consent, end to end, as a browser would do it
  python -m devhost grant --tenant T / revoke --tenant T    change the identity provider's grants directly
  python -m devhost connect --tenant T    the walk with the demo organisation: enable, the CRM's environment URL,
                                          consent, the timer; the data then comes from the local Graph and Dataverse
  python -m devhost seed --tenant T       a realistic tenant, through the running app's sync API
  python -m devhost portal-dist --out dist/portal --api-base-url https://… --client-id … --api-scope …
                                          the portal's files for Azure Static Web Apps

The ports `serve` listens on are options (defaults 7071 for the app, 7072 for the identity provider, 4280 for the
portal, 7073 and 7074 for the local Graph and Dataverse, 10002 and 10001 for Azurite's table and queue services);
`serve` writes them to .devhost/ports.json, where the other commands find the running app.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from devhost import cors
from devhost import settings as local
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider, RegisteredApp

if TYPE_CHECKING:
    from devhost.portal import PortalServer

DEMO_TENANT = str(uuid.UUID(int=1))


@dataclass(frozen=True)
class Ports:
    app: int = 7071
    idp: int = 7072
    table: int = 10002
    queue: int = 10001
    graph: int = 7073
    dataverse: int = 7074
    portal: int = 4280

    @classmethod
    def of_running(cls, state_dir: Path) -> Ports:
        path = state_dir / "ports.json"
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "ports.json").write_text(json.dumps(asdict(self)))

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app}"

    @property
    def portal_urls(self) -> tuple[str, ...]:
        """The portal's sign-in redirect URIs (the SPA platform of the app registration, locally)."""
        return (f"http://localhost:{self.portal}/", f"http://127.0.0.1:{self.portal}/")


def _apply_ports(values: dict[str, str], ports: Ports) -> None:
    """The addresses that follow from the ports, unless the environment sets them."""
    os.environ.setdefault("RI_AUTHORITY_HOST", f"https://127.0.0.1:{ports.idp}")
    os.environ.setdefault("RI_CONSENT_REDIRECT_URI", f"{ports.app_url}/api/consent/callback")
    os.environ.setdefault("RI_PORTAL_URL", ports.portal_urls[0] if ports.portal else "")
    os.environ.setdefault("RI_GRAPH_BASE_URL", f"https://127.0.0.1:{ports.graph}/v1.0")  # the local Graph
    values.update({k: os.environ[k] for k in ("RI_AUTHORITY_HOST", "RI_CONSENT_REDIRECT_URI", "RI_PORTAL_URL",
                                              "RI_GRAPH_BASE_URL")})


def _identity_provider(values: dict[str, str], state_dir: Path, ports: Ports | None = None) -> IdentityProvider:
    authority = urlsplit(local.effective(values, "RI_AUTHORITY_HOST", f"https://127.0.0.1:{(ports or Ports()).idp}"))
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
        spa_redirect_uris=(ports or Ports()).portal_urls,
    )
    return IdentityProvider(state_dir / "idp", app, api_audience=audiences[0], host=authority.hostname or "127.0.0.1",
                            port=authority.port or 443)


def _wait_for_stop() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _logging() -> None:
    from shared import observability

    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request (the queues are polled)
    observability.install()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(observability.JsonFormatter())


def cmd_serve(args: argparse.Namespace) -> int:
    from devhost.azurite import Azurite, end_with_parent
    from devhost.functionhost import FunctionHost

    ports = Ports(args.port, args.idp_port, args.table_port, args.queue_port, args.graph_port, args.dataverse_port,
                  args.portal_port)
    values = local.load_values()
    _apply_ports(values, ports)
    local.apply_to_environment(values)
    _logging()
    azurite = None
    if not args.no_azurite:
        storage = local.effective(values, "AzureWebJobsStorage")
        if storage.lower() != "usedevelopmentstorage=true":
            print("AzureWebJobsStorage is not UseDevelopmentStorage=true: not starting Azurite", file=sys.stderr)
        else:
            azurite = Azurite(ports.table, queue_port=ports.queue, location=args.state_dir / "azurite").start()
            values["AzureWebJobsStorage"] = os.environ["AzureWebJobsStorage"] = azurite.connection_string  # noqa: SIM112
    idp = _identity_provider(values, args.state_dir, ports).start()
    os.environ["RI_CA_BUNDLE"] = str(idp.tls.ca_cert)
    graph, dataverse, environment = _data_sources(idp, ports)
    workers: list[subprocess.Popen[bytes]] = []
    portal = None
    try:
        import function_app

        host = FunctionHost(function_app.app, host="127.0.0.1", port=ports.app, route_prefix="api", settings=values)
        cors.enable(host, cors.from_local_settings(local.LOCAL_SETTINGS, local.SAMPLE_SETTINGS))
        host.start()
        crm_line = _demo_crm(environment)
        portal, portal_line = _start_portal(host.base_url, idp, ports.portal)
        ports.save(args.state_dir)
        for _ in range(max(0, args.workers - 1)):  # this process is the first instance
            workers.append(subprocess.Popen([sys.executable, "-m", "devhost", "--state-dir", str(args.state_dir),  # noqa: S603
                                             "worker"], env=dict(os.environ), preexec_fn=end_with_parent))
        print(f"""
Relationship intelligence is running (Ctrl-C stops everything).
  portal         {portal_line}
  API            {host.base_url}/api/status   {host.base_url}/api/openapi.json
  timers         POST {host.base_url}/admin/functions/<name>   (header x-devhost-wait: true waits for the run)
  queues         {len(host.queue_functions)} queue triggers on {args.workers} instance(s)
  identity       {idp.base_url}  (CA: {idp.tls.ca_cert}; your browser must trust it, see the README)
  data sources   {f"Graph {graph.base_url}, Dataverse {environment} (tenant {DEMO_TENANT})" if graph and dataverse
                  else "not started"}{crm_line}
  storage        {f"Azurite tables :{ports.table}, queues :{ports.queue}, data in {azurite.location}" if azurite
                  else "as configured"}
  try it         .venv/bin/python -m devhost connect    (enable, CRM, consent, timer; README: Trying it by hand)
""", flush=True)
        _wait_for_stop()
        host.stop()
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for server in (graph, dataverse, portal):
            if server is not None:
                server.stop()
        idp.stop()
        if azurite is not None:
            azurite.stop()
    return 0


def _start_portal(api: str, idp: IdentityProvider, port: int) -> tuple[PortalServer | None, str]:
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


def _demo_crm(environment: str | None) -> str:
    """The demo tenant's CRM is the local Dataverse, as its admin would set it (the portal has no field for it yet),
    so that Enable and consent in the portal are all the walk needs. Only when no URL is set: an admin's stays."""
    if environment is None:
        return ""
    from shared import bootstrap
    from shared.errors import AppError
    from shared.tenancy import TenantId

    try:
        service = bootstrap.container().tenant_settings()
        if service.current(TenantId(DEMO_TENANT)).settings.crm.environment_url is None:
            service.set_crm_environment(TenantId(DEMO_TENANT), "devhost", environment)
    except AppError as exc:  # storage not up yet, or RI_ALLOW_LOOPBACK_SOURCES off in local.settings.json
        return f"\n                 (its CRM environment URL was not set: {exc.detail})"
    return f"\n                 CRM environment URL of tenant …0001 set to {environment} (Enable, consent: data flows)"


def cmd_portal_dist(args: argparse.Namespace) -> int:
    from devhost.portal import PortalConfig, build_site

    config = PortalConfig(api_base_url=args.api_base_url.rstrip("/"), client_id=args.client_id,
                          authority=args.authority.rstrip("/"), api_scopes=tuple(args.api_scope))
    files = build_site(args.out, config)
    print(f"{len(files)} files in {args.out}; deploy them with the Static Web App's deployment token")
    return 0


def _data_sources(idp: IdentityProvider, ports: Ports) -> tuple[Any, Any, str | None]:
    """The local Graph and Dataverse, holding the demo organisation of tenant …0001 (in memory, the same each
    start). A port in use leaves them out with a warning: the app itself does not need them to start."""
    from devhost import organisation
    from devhost.dataverse import LocalDataverse
    from devhost.graph import LocalGraph

    try:
        graph = LocalGraph(idp, port=ports.graph).start()
    except OSError as exc:
        print(f"local Graph not started on port {ports.graph}: {exc}", file=sys.stderr)
        return None, None, None
    try:
        dataverse = LocalDataverse(idp, port=ports.dataverse).start()
    except OSError as exc:
        print(f"local Dataverse not started on port {ports.dataverse}: {exc}", file=sys.stderr)
        graph.stop()
        return None, None, None
    org = organisation.generate(DEMO_TENANT, environment="contoso")
    organisation.load(org, graph, dataverse, application_id=idp.app.client_id)
    return graph, dataverse, org.environment_url


def cmd_worker(args: argparse.Namespace) -> int:
    """Another instance of the app that runs only the queue triggers, against the storage `serve` started."""
    from devhost.functionhost import FunctionHost

    ports = Ports.of_running(args.state_dir)
    values = local.load_values()
    _apply_ports(values, ports)
    local.apply_to_environment(values)
    _logging()
    if os.environ.get("AzureWebJobsStorage", "").lower() == "usedevelopmentstorage=true":  # noqa: SIM112
        from devhost.azurite import connection_string

        os.environ["AzureWebJobsStorage"] = connection_string(ports.table, ports.queue)  # noqa: SIM112
    values["AzureWebJobsStorage"] = os.environ["AzureWebJobsStorage"]  # noqa: SIM112
    os.environ.setdefault("RI_CA_BUNDLE", str(args.state_dir / "idp" / "tls" / "ca.pem"))
    import function_app

    host = FunctionHost(function_app.app, serve_http=False, run_timers=False, settings=values,
                        message_lease_seconds=args.lease_seconds).start()
    print(f"worker {os.getpid()}: {len(host.queue_functions)} queue triggers", flush=True)
    _wait_for_stop()
    host.stop(timeout=30)
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


def _running_idp(args: argparse.Namespace) -> tuple[IdentityProvider, Ports]:
    ports = Ports.of_running(args.state_dir)
    values = local.load_values()
    _apply_ports(values, ports)
    return _identity_provider(values, args.state_dir, ports), ports


def cmd_token(args: argparse.Namespace) -> int:
    idp, _ = _running_idp(args)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if args.app:
        token = idp.app_token(args.tenant, args.user, roles)
    else:
        token = idp.user_token(args.tenant, args.user, roles, name=args.name, lifetime_seconds=args.lifetime)
    print(token)
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    idp, _ = _running_idp(args)
    permissions = [p.strip() for p in args.permissions.split(",") if p.strip()]
    idp.grants.grant(args.tenant, idp.app.client_id, permissions)
    print(f"the identity provider now says {idp.app.client_id} holds {', '.join(permissions) or 'nothing'} in "
          f"{args.tenant}; the app learns of it at the consent callback (use `consent`) or its daily re-check")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    idp, _ = _running_idp(args)
    removed = idp.grants.revoke(args.tenant, idp.app.client_id)
    print(f"revoked the consent of {idp.app.client_id} in {args.tenant}; the app notices at its daily re-check"
          if removed else f"the identity provider holds no consent for {args.tenant}: nothing to revoke")
    return 0


class CliError(Exception):
    """A failure to report in one sentence, without a traceback."""


def _session(token: str | None = None) -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def _call(session: Any, method: str, url: str, **kwargs: Any) -> Any:
    import requests

    try:
        response = session.request(method, url, timeout=kwargs.pop("timeout", 60), **kwargs)
    except requests.ConnectionError as exc:
        raise CliError(f"the app does not answer at {url.split('/api/')[0]}: start it with `make run`") from exc
    if response.status_code >= 400:
        detail = response.json().get("detail") if "json" in response.headers.get("Content-Type", "") else None
        said = detail or response.text[:200]
        raise CliError(f"{method} {urlsplit(url).path} answered {response.status_code}: {said}")
    return response


def cmd_consent(args: argparse.Namespace) -> int:
    """What an admin and the Microsoft 365 admin do in their browsers: ask for the link, accept on the identity
    provider's page, and follow its redirect to the app's callback."""
    idp, ports = _running_idp(args)
    status = _consent(idp, args.base_url or ports.app_url, args.tenant)
    return 0 if status == "granted" else 1


def _consent(idp: IdentityProvider, base: str, tenant: str) -> str:
    import re
    from html import unescape

    admin = _session(idp.user_token(tenant, str(uuid.UUID(int=2)), ["SystemAdministrator"], name="Admin"))
    link = _call(admin, "POST", f"{base}/api/relationship-intelligence/consent-requests").json()["consentUrl"]
    browser = _session()
    browser.verify = str(idp.tls.ca_cert)
    page = _call(browser, "GET", link).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    answer = _call(browser, "POST", link, data={**{k: unescape(v) for k, v in fields.items()}, "answer": "accept"},
                   allow_redirects=False)
    callback = answer.headers["Location"]
    outcome = browser.get(callback, allow_redirects=False, timeout=60)
    status = str(_call(admin, "GET", f"{base}/api/relationship-intelligence").json()["exchange"]["consent"]["status"])
    print(f"consent page accepted; the callback answered {outcome.status_code}; consent is now {status}")
    return status


def cmd_connect(args: argparse.Namespace) -> int:
    """The walk of issue 13 with the organisation `serve` loaded into the local Graph and Dataverse: what an admin
    does in the portal (prerequisites, enable with security roles, the CRM's environment URL, consent), then the
    timer, as the schedule would run it; the rounds then bring the data in by themselves."""
    from shared.domain.security_roles import STANDARD_SALES_ROLES

    idp, ports = _running_idp(args)
    base = args.base_url or ports.app_url
    api = f"{base}/api/relationship-intelligence"
    admin = _session(idp.user_token(args.tenant, str(uuid.UUID(int=2)), ["SystemAdministrator"], name="Admin"))
    by_name = {r.name.lower(): r.id for r in STANDARD_SALES_ROLES}
    names = [n.strip() for n in args.roles.split(",") if n.strip()]
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise CliError(f"unknown security roles {unknown}; use names such as {', '.join(sorted(by_name))}")
    roles = [by_name[n.lower()] for n in names]
    overview = _call(admin, "GET", api).json()
    if overview["status"] != "enabled":
        _call(admin, "PUT", f"{api}/prerequisites", json={"salesInsightsPremium": True,
                                                         "office365DataLocation": args.location})
        _call(admin, "POST", f"{api}/enable", json={"securityRoleIds": roles})
    else:
        _call(admin, "PUT", f"{api}/security-roles", json={"securityRoleIds": roles})
    if _call(admin, "GET", api).json()["exchange"]["consent"]["status"] != "granted":
        _consent(idp, base, args.tenant)  # also what creates our app's service principal in the tenant
    url = args.environment_url or f"https://127.0.0.1:{ports.dataverse}/contoso"
    _call(admin, "PUT", f"{api}/crm-environment", json={"environmentUrl": url})
    print(f"enabled with the roles {', '.join(names)}; the CRM is {url}")
    deadline = time.monotonic() + args.timeout
    while True:
        _call(admin, "POST", f"{base}/admin/functions/schedule_background_work", json={"input": ""},
              headers={"x-devhost-wait": "true"}, timeout=120)
        crm = _call(admin, "GET", api).json()["dataSources"]["crm"]
        if crm["lastSuccessAt"] and not crm["roundRunning"]:
            break
        if crm["lastError"]:
            print(f"the CRM round says: {crm['lastError']['message']}")
        if time.monotonic() > deadline:
            raise CliError("the CRM round did not finish in time: are the app's queue triggers running?")
        time.sleep(2)
    seller = _session(idp.user_token(args.tenant, str(uuid.UUID(int=3)), ["Salesperson"], name="Seller"))
    while True:  # the mailbox rounds and the insights follow the CRM round on the queues
        time.sleep(2)
        accounts = _call(seller, "GET", f"{base}/api/insights/account?pageSize=100").json()["items"]
        exchange = _call(admin, "GET", api).json()["dataSources"]["exchange"]
        if (accounts and exchange["mailboxesSynced"] >= exchange["mailboxes"]) or time.monotonic() > deadline:
            break
    print(f"the CRM's last round: {crm['itemsInLastRound']} items; mailboxes read: {exchange['mailboxes']}, "
          f"synced: {exchange['mailboxesSynced']}, items in their last rounds: {exchange['itemsInLastRound']}")
    print(f"insights for {len(accounts)} accounts; try GET {base}/api/insights/contact?needsAttention=true with a "
          "seller's token, or the portal")
    return 0 if accounts else 1


_REASONS = {
    "consentNotGranted": "Exchange data waits for the Microsoft 365 admin's consent: run `python -m devhost consent "
                         "--tenant {tenant}`, then seed again",
    "mailboxOwnerNotInSelectedRole": "their mailbox owners are outside the selected security roles",
    "exchangeIntegrationOff": "Exchange integration is off",
    "dataLocationNotEligible": "the Office 365 data location cannot use Exchange data",
}


def cmd_seed(args: argparse.Namespace) -> int:
    from devhost.seed import generate

    idp, ports = _running_idp(args)
    base = args.base_url or ports.app_url
    api = f"{base}/api"
    admin = _session(idp.user_token(args.tenant, str(uuid.UUID(int=2)), ["SystemAdministrator"], name="Admin"))
    connector = _session(idp.app_token(args.tenant, "devhost-seed", ["RelationshipIntelligence.Sync"]))
    overview = _call(admin, "GET", f"{api}/relationship-intelligence").json()
    if overview["status"] != "enabled":
        _call(admin, "PUT", f"{api}/relationship-intelligence/prerequisites",
              json={"salesInsightsPremium": True, "office365DataLocation": args.location})
        overview = _call(admin, "POST", f"{api}/relationship-intelligence/enable").json()
        print(f"enabled relationship intelligence for {args.tenant} (data location {args.location})")
    refused: dict[str, int] = {}
    for kind, items in generate(accounts=args.accounts, sellers=args.sellers, seed=args.seed).items():
        stored = unchanged = 0
        for start in range(0, len(items), 1000):
            report = _call(connector, "POST", f"{api}/sync/{kind}", json={"items": items[start:start + 1000]},
                           timeout=300).json()
            stored, unchanged = stored + report["stored"], unchanged + report["unchanged"]
            for reason, count in report["rejectedByReason"].items():
                refused[reason] = refused.get(reason, 0) + count
        print(f"{kind:>13}: {stored} stored, {unchanged} already there")
    for reason, count in refused.items():
        why = _REASONS.get(reason, "see the sync API").format(tenant=args.tenant)
        print(f"{count} items refused: {reason} ({why})")
    asked = _call(admin, "POST", f"{api}/relationship-intelligence/insights/recompute").json()
    deadline = time.monotonic() + args.timeout
    while asked["state"] != "done" or asked["finishedAt"] < asked["requestedAt"]:
        if time.monotonic() > deadline:
            raise CliError("the insights were not recomputed in time: are the app's queue triggers running?")
        time.sleep(0.5)
        asked = _call(admin, "GET", f"{api}/relationship-intelligence/insights/recompute").json()
    print(f"insights recomputed: {asked['records']} records from {asked['activities']} activities; try "
          f"GET {api}/insights/contact?needsAttention=true with a seller's token")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=local.STATE_DIR, help="git-ignored state folder")
    sub = parser.add_subparsers(dest="command", required=True)

    defaults = Ports()
    serve = sub.add_parser("serve", help="run Azurite, the identity provider and the Functions app")
    serve.add_argument("--port", type=int, default=defaults.app, help="the app (the Functions host's 7071)")
    serve.add_argument("--idp-port", type=int, default=defaults.idp, help="the local identity provider")
    serve.add_argument("--table-port", type=int, default=defaults.table, help="Azurite's table service")
    serve.add_argument("--queue-port", type=int, default=defaults.queue, help="Azurite's queue service")
    serve.add_argument("--graph-port", type=int, default=defaults.graph, help="the local Microsoft Graph")
    serve.add_argument("--dataverse-port", type=int, default=defaults.dataverse, help="the local Dataverse")
    serve.add_argument("--portal-port", type=int, default=defaults.portal, help="the admin portal (0: not served)")
    serve.add_argument("--workers", type=int, default=1, help="instances running the queue triggers (processes)")
    serve.add_argument("--no-azurite", action="store_true", help="use storage that is already running")
    serve.set_defaults(run=cmd_serve)

    worker = sub.add_parser("worker", help="an instance that runs only the queue triggers")
    worker.add_argument("--lease-seconds", type=float, default=600.0,
                        help="how long a received message stays invisible to other instances (renewed while it runs)")
    worker.set_defaults(run=cmd_worker)

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

    consent = sub.add_parser("consent", help="give the Microsoft 365 admin's consent end to end")
    consent.add_argument("--tenant", type=_guid, required=True)
    consent.add_argument("--base-url", default=None, help="the app (default: where `serve` listens)")
    consent.set_defaults(run=cmd_consent)

    grant = sub.add_parser("grant", help="record a grant at the identity provider only (the app is not told)")
    grant.add_argument("--tenant", type=_guid, required=True)
    grant.add_argument("--permissions", default=",".join(DEFAULT_GRAPH_PERMISSIONS))
    grant.set_defaults(run=cmd_grant)

    revoke = sub.add_parser("revoke", help="remove the grant (a withdrawn consent, noticed at the daily re-check)")
    revoke.add_argument("--tenant", type=_guid, required=True)
    revoke.set_defaults(run=cmd_revoke)

    connect = sub.add_parser("connect", help="enable, set the CRM, consent and run the timer: the demo organisation's "
                                             "data comes in from the local Graph and Dataverse")
    connect.add_argument("--tenant", type=_guid, default=DEMO_TENANT)
    connect.add_argument("--environment-url", default=None,
                         help="the Dataverse environment (default: the demo one, https://127.0.0.1:7074/contoso)")
    connect.add_argument("--roles", default="Salesperson,Sales Manager",
                         help="names of the security roles whose mailboxes are read")
    connect.add_argument("--location", default="FR", help="Office 365 data location set when enabling")
    connect.add_argument("--base-url", default=None, help="the app (default: where `serve` listens)")
    connect.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the data")
    connect.set_defaults(run=cmd_connect)

    seed = sub.add_parser("seed", help="load a realistic, deterministic tenant into the running app")
    seed.add_argument("--tenant", type=_guid, required=True)
    seed.add_argument("--accounts", type=int, default=20)
    seed.add_argument("--sellers", type=int, default=8)
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--location", default="FR", help="Office 365 data location set when enabling")
    seed.add_argument("--base-url", default=None, help="the app (default: where `serve` listens)")
    seed.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the insights")
    seed.set_defaults(run=cmd_seed)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The local Dataverse Web API: a stateful loopback stand-in for the tables the CRM connector reads (dev and tests
only).

One server holds any number of environments, each `https://127.0.0.1:{port}/{name}` (the environment URL, also
the audience of its tokens) and owned by one tenant. Under `{environment}/api/data/v9.2/`:
- every table the connector reads (see ENTITY_SETS), with `$select`, `Prefer: odata.maxpagesize` (at most and by
  default 5,000) and `@odata.nextLink` paging;
- change tracking with `Prefer: odata.track-changes`: a first round returns every row, its last page an
  `@odata.deltaLink` whose `$deltatoken` is `{version}!{UTC time}` as Dataverse's are; replaying it returns the
  rows changed since (new and updated first, by version) then `$deletedEntity` entries for deletions, and a new
  delta link; `$filter`, `$orderby`, `$expand` and `$top` are refused with it, as the docs say; a token older
  than the environment's `ExpireChangeTrackingInDays` (7), or expired on demand, is refused;
- without change tracking, simple `$filter` (`column eq value` joined by `and`) and `$top`;
- `roles({id})/systemuserroles_association` (the users holding a role) and `WhoAmI`;
- `Prefer: odata.include-annotations` for lookups' `@Microsoft.Dynamics.CRM.lookuplogicalname`;
- tokens: the identity provider's signature, `aud` = the environment URL, the environment's tenant, and an
  enabled application user for the token's `appid` (403 0x80072560 otherwise);
- faults (429/503 with `Retry-After`) and call counts per tenant and table, as the local Graph has.

Activities here carry a subject and a description (the body): a connector must never select them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from devhost.standin import ApiError, LoopbackService, Request

API = ("api", "data", "v9.2")
LOOKUP = "@Microsoft.Dynamics.CRM.lookuplogicalname"
MAX_PAGE = 5000

# entity set -> (logical name, primary key, columns besides the key)
ENTITY_SETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "systemusers": ("systemuser", "systemuserid", (
        "fullname", "internalemailaddress", "isdisabled", "azureactivedirectoryobjectid", "msdyn_gdproptout",
        "applicationid", "accessmode", "_businessunitid_value", "modifiedon", "versionnumber")),
    "roles": ("role", "roleid", ("name", "_parentrootroleid_value", "_businessunitid_value", "versionnumber")),
    "systemuserrolescollection": ("systemuserroles", "systemuserroleid", ("systemuserid", "roleid",
                                                                          "versionnumber")),
    "accounts": ("account", "accountid", ("name", "websiteurl", "emailaddress1", "_primarycontactid_value",
                                          "statecode", "msdyn_gdproptout", "modifiedon", "versionnumber",
                                          "telephone1", "description")),
    "contacts": ("contact", "contactid", ("fullname", "emailaddress1", "_parentcustomerid_value", "statecode",
                                          "msdyn_gdproptout", "modifiedon", "versionnumber", "telephone1",
                                          "description")),
    "leads": ("lead", "leadid", ("fullname", "emailaddress1", "companyname", "_ownerid_value", "statecode",
                                 "createdon", "msdyn_gdproptout", "modifiedon", "versionnumber", "description")),
    "opportunities": ("opportunity", "opportunityid", (
        "name", "_ownerid_value", "_parentaccountid_value", "_parentcontactid_value", "_customerid_value",
        "statecode", "createdon", "estimatedvalue", "msdyn_gdproptout", "modifiedon", "versionnumber",
        "description")),
    "connections": ("connection", "connectionid", ("_record1id_value", "_record2id_value", "_record2roleid_value",
                                                   "statecode", "versionnumber")),
    "emails": ("email", "activityid", (
        "subject", "description", "messageid", "conversationtrackingid", "senton", "createdon", "modifiedon",
        "directioncode", "statecode", "statuscode", "_regardingobjectid_value", "_ownerid_value", "versionnumber")),
    "appointments": ("appointment", "activityid", (
        "subject", "description", "scheduledstart", "scheduledend", "scheduleddurationminutes", "statecode",
        "_regardingobjectid_value", "_ownerid_value", "modifiedon", "versionnumber", "location")),
    "phonecalls": ("phonecall", "activityid", (
        "subject", "description", "phonenumber", "actualstart", "scheduledstart", "actualdurationminutes",
        "directioncode", "statecode", "_regardingobjectid_value", "_ownerid_value", "modifiedon", "versionnumber")),
    "activityparties": ("activityparty", "activitypartyid", ("_activityid_value", "_partyid_value", "addressused",
                                                             "participationtypemask", "versionnumber")),
}
_NOT_WITH_TRACKING = ("$filter", "$orderby", "$expand", "$top")
_EQ = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+eq\s+(.+?)\s*$")


@dataclass
class _Table:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)  # id -> version of the deletion


@dataclass
class Environment:
    name: str
    tenant: str
    url: str
    organization_id: str
    tables: dict[str, _Table] = field(default_factory=lambda: {name: _Table() for name in ENTITY_SETS})
    version: int = 1_000_000
    token_floor: int = 0  # change tokens below this version are refused (expired on demand)
    expire_change_tracking_in_days: int = 7


@dataclass
class LocalDataverse(LoopbackService):
    name: str = "dataverse"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _environments: dict[str, Environment] = field(default_factory=dict, init=False, repr=False)

    # -- environments and data ------------------------------------------------------------------------

    def add_environment(self, tenant: str, name: str, *, application_ids: tuple[str, ...] = ()) -> str:
        """A new environment of the tenant; each application id becomes an enabled application user. Returns
        the environment URL."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise ValueError("an environment name is lowercase letters, digits and hyphens")
        with self._lock:
            url = f"{self.base_url}/{name}"
            self._environments[name] = Environment(name, tenant, url, str(uuid.uuid5(uuid.NAMESPACE_URL, url)))
            for app_id in application_ids:
                self.add_application_user(url, app_id)
            return url

    def _env(self, url: str) -> Environment:
        return self._environments[url.rstrip("/").rsplit("/", 1)[-1]]

    def add_application_user(self, url: str, application_id: str) -> str:
        return self.put(url, "systemusers", {
            "systemuserid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}/app/{application_id}")),
            "fullname": "# relationship intelligence", "applicationid": application_id, "accessmode": 4,
            "isdisabled": False, "internalemailaddress": f"app-{application_id[:8]}@localhost.invalid",
            "azureactivedirectoryobjectid": None, "msdyn_gdproptout": False})

    def put(self, url: str, entity_set: str, row: dict[str, Any]) -> str:
        """Creates or replaces a row (its versionnumber and modifiedon are the environment's); returns its id."""
        with self._lock:
            env = self._env(url)
            _, key, _ = ENTITY_SETS[entity_set]
            table = env.tables[entity_set]
            item = dict(row)
            item.setdefault(key, str(uuid.uuid4()))
            env.version += 1
            item["versionnumber"] = env.version
            item["modifiedon"] = _dv_time(self.clock())
            table.rows[item[key]] = item
            table.deleted.pop(item[key], None)
            return str(item[key])

    def update(self, url: str, entity_set: str, row_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._env(url).tables[entity_set].rows[row_id]
            self.put(url, entity_set, {**current, **changes})

    def delete(self, url: str, entity_set: str, row_id: str) -> None:
        with self._lock:
            env = self._env(url)
            table = env.tables[entity_set]
            del table.rows[row_id]
            env.version += 1
            table.deleted[row_id] = env.version

    def rows(self, url: str, entity_set: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._env(url).tables[entity_set].rows.values()]

    def expire_change_tokens(self, url: str) -> None:
        """Every change token handed out so far is now refused (as after ExpireChangeTrackingInDays)."""
        with self._lock:
            env = self._env(url)
            env.version += 1  # as if a change happened: tokens handed out from now on differ from the old ones
            env.token_floor = env.version

    # -- protocol -------------------------------------------------------------------------------------

    def _environment_of(self, request: Request) -> Environment | None:
        return self._environments.get(request.segments[0]) if request.segments else None

    def audience_ok(self, audience: Any, request: Request) -> bool:
        env = self._environment_of(request)
        return env is not None and audience in (env.url, env.url + "/")

    def scope_of(self, request: Request) -> str:
        s = request.segments
        return s[4].split("(")[0] if len(s) >= 5 and tuple(s[1:4]) == API else ""

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any] | None:
        return {"error": {"code": code, "message": message}}

    def unauthorized(self, message: str, request: Request) -> ApiError:
        env = self._environment_of(request)
        resource = f"{env.url}/" if env else f"{self.base_url}/"
        return ApiError(401, None, {"WWW-Authenticate": "Bearer authorization_uri=https://login.microsoftonline.com/"
                                    f"common/oauth2/authorize, resource_id={resource}"})

    def _error(self, status: int, code: str, message: str) -> ApiError:
        return ApiError(status, self.error_body(status, code, message))

    def handle(self, request: Request, claims: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        env = self._environment_of(request)
        s = request.segments
        if env is None or tuple(s[1:4]) != API or len(s) not in (5, 6):
            raise self._error(404, "0x80060888", "Resource not found for the segment.")
        if claims.get("tid") != env.tenant:
            raise self.unauthorized("another tenant", request)
        prefer = request.headers.get("Prefer", "")
        with self._lock:
            app_user = next((u for u in env.tables["systemusers"].rows.values()
                             if u.get("applicationid") == claims.get("appid") and not u.get("isdisabled")), None)
            if app_user is None:
                raise self._error(403, "0x80072560", "The user is not a member of the organization.")
            if s[4:] == ["WhoAmI"]:
                return 200, {"@odata.context": f"{env.url}/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM."
                             "WhoAmIResponse", "BusinessUnitId": str(uuid.uuid5(uuid.NAMESPACE_URL, env.url + "/bu")),
                             "UserId": app_user["systemuserid"], "OrganizationId": env.organization_id}, {}
            if len(s) == 6:
                role = re.fullmatch(r"roles\(([0-9a-f-]{36})\)", s[4])
                if role is None or s[5] != "systemuserroles_association":
                    raise self._error(404, "0x80060888", f"Resource not found for the segment '{s[5]}'.")
                if "odata.track-changes" in prefer:
                    raise self._error(400, "0x80060888", "Change tracking is not supported for a navigation "
                                      "property.")
                return self._answer(env, "systemusers", self.role_members(env, role.group(1)), request,
                                    f"{env.url}/api/data/v9.2/{s[4]}/{s[5]}")
            if s[4] not in ENTITY_SETS:
                raise self._error(404, "0x80060888", f"Resource not found for the segment '{s[4]}'.")
            return self._answer(env, s[4], list(env.tables[s[4]].rows.values()), request,
                                f"{env.url}/api/data/v9.2/{s[4]}")

    def _answer(self, env: Environment, entity_set: str, rows: list[dict[str, Any]], request: Request, base: str,
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        query = request.query
        prefer = request.headers.get("Prefer", "")
        tracking = "odata.track-changes" in prefer
        annotations = "lookuplogicalname" in prefer or 'include-annotations="*"' in prefer
        size = _page_size(prefer)
        logical, key, columns = ENTITY_SETS[entity_set]
        select = [c.strip() for c in query.get("$select", "").split(",") if c.strip()]
        unknown = [c for c in select if c != key and c not in columns]
        if unknown:
            raise self._error(400, "0x80060888", f"Could not find a property named '{unknown[0]}' on type "
                              f"'Microsoft.Dynamics.CRM.{logical}'.")
        select_part = f"$select={','.join(select)}" if select else ""
        headers: dict[str, str] = {"OData-Version": "4.0"}
        context = f"{env.url}/api/data/v9.2/$metadata#{entity_set}({','.join(select)})" if select else \
            f"{env.url}/api/data/v9.2/$metadata#{entity_set}"
        state: dict[str, Any] | None = None
        if "$skiptoken" in query:
            state = self.cursors.decode(unquote(query["$skiptoken"]))
            if state is None or state.get("set") != base:
                raise self._error(400, "0x80060888", "The paging cookie is invalid.")
        if tracking or (state and state.get("track")) or "$deltatoken" in query:
            bad = next((o for o in _NOT_WITH_TRACKING if o in query), None)
            if bad:
                raise self._error(400, "0x80060888", f'The "{bad}" query parameter isn\'t supported when Change '
                                  "Tracking is enabled.")
            headers["Preference-Applied"] = f"odata.track-changes,odata.maxpagesize={size}"
            if state is None:
                since = 0
                if "$deltatoken" in query:
                    since = self._check_token(env, unquote(query["$deltatoken"]))
                    context += "/$delta"
                state = {"set": base, "track": True, "p": since, "s": env.version, "ph": 0, "l": since}
            table = env.tables[entity_set]
            entries = sorted([(0, int(r["versionnumber"]), rid) for rid, r in table.rows.items()
                              if state["p"] < int(r["versionnumber"]) <= state["s"]] +
                             ([(1, version, rid) for rid, version in table.deleted.items()
                               if state["p"] < version <= state["s"]] if state["p"] else []))
            entries = [e for e in entries if (e[0], e[1]) > (state["ph"], state["l"])]
            page, rest = entries[:size], entries[size:]
            value = [self._row(env, entity_set, table.rows[rid], select, annotations) if phase == 0 else
                     {"@odata.context": f"{env.url}/api/data/v9.2/$metadata#{entity_set}/$deletedEntity",
                      "id": rid, "reason": "deleted"} for phase, _, rid in page]
            body: dict[str, Any] = {"@odata.context": context, "value": value}
            if rest:
                token = self.cursors.encode({**state, "ph": page[-1][0], "l": page[-1][1]})
                body["@odata.nextLink"] = f"{base}?{select_part}&$skiptoken={quote(token)}".replace("?&", "?")
            else:
                delta = quote(f"{state['s']}!{self.clock().strftime('%m/%d/%Y %H:%M:%S')}")
                body["@odata.deltaLink"] = f"{base}?{select_part}&$deltatoken={delta}".replace("?&", "?")
            return 200, body, headers
        # a plain query
        filtered = [r for r in rows if _matches(r, query.get("$filter"))] if "$filter" in query else rows
        filtered.sort(key=lambda r: str(r[key]))
        if "$top" in query:
            filtered = filtered[:max(0, int(query["$top"]))]
        offset = int(state["o"]) if state else 0
        page_rows = filtered[offset:offset + size]
        body = {"@odata.context": context,
                "value": [self._row(env, entity_set, r, select, annotations) for r in page_rows]}
        if offset + size < len(filtered):
            token = self.cursors.encode({"set": base, "o": offset + size})
            extra = "".join(f"&{k}={quote(v)}" for k, v in query.items() if k in ("$filter", "$top"))
            body["@odata.nextLink"] = f"{base}?{select_part}{extra}&$skiptoken={quote(token)}".replace("?&", "?")
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return 200, body, headers

    def _check_token(self, env: Environment, token: str) -> int:
        version_text, _, moment_text = token.partition("!")
        try:
            version = int(version_text)
            moment = datetime.strptime(moment_text, "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC)
        except ValueError as exc:
            raise self._error(400, "0x80060888", "The delta token is malformed.") from exc
        expired = moment < self.clock() - timedelta(days=env.expire_change_tracking_in_days)
        if expired or version < env.token_floor or version > env.version:
            # The exact code Dataverse gives is not documented; the message says what the caller must do.
            raise self._error(400, "0x80044352", "The change tracking token has expired or is not valid for "
                              "this table. Perform a full synchronization.")
        return version

    def _row(self, env: Environment, entity_set: str, row: dict[str, Any], select: list[str],
             annotations: bool) -> dict[str, Any]:
        _, key, columns = ENTITY_SETS[entity_set]
        names = select or list(columns)
        out: dict[str, Any] = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
        for name in names:
            out[name] = row.get(name)
            if annotations and name.startswith("_") and name.endswith("_value") and row.get(name) is not None:
                out[name + LOOKUP] = row.get(name + LOOKUP)
        out[key] = row[key]
        return out

    def role_members(self, env: Environment, role_id: str) -> list[dict[str, Any]]:
        holders = {r["systemuserid"] for r in env.tables["systemuserrolescollection"].rows.values()
                   if r["roleid"] == role_id}
        return [u for uid, u in env.tables["systemusers"].rows.items() if uid in holders]


def _dv_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_size(prefer: str) -> int:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return max(1, min(MAX_PAGE, int(match.group(1)))) if match else MAX_PAGE


def _matches(row: dict[str, Any], expression: str | None) -> bool:
    if not expression:
        return True
    for clause in re.split(r"\s+and\s+", expression):
        match = _EQ.match(clause)
        if match is None:
            raise ApiError(400, {"error": {"code": "0x80060888", "message": "Only 'column eq value' filters are "
                                                                           "supported here."}})
        column, literal = match.groups()
        value: Any = literal.strip("'") if literal.startswith("'") else \
            {"true": True, "false": False, "null": None}.get(literal, literal)
        current = row.get(column)
        if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, str):
            value = int(value) if value.lstrip("-").isdigit() else value
        if current != value:
            return False
    return True


__all__ = ["ENTITY_SETS", "Environment", "LocalDataverse"]

"""Every HTTP endpoint of the API, declared once: route, method, who may call it, its query parameters, its
request and response models. The function modules register their routes from these declarations, the OpenAPI
document is generated from `ALL`, and a contract test holds the two equal.

Models are named, not imported ("module:Class" under shared.api), so that indexing the app builds no pydantic
model: they load on the first request that needs them, or when the OpenAPI document is first asked for.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from shared.domain.permissions import Permission
from shared.domain.vocabulary import DATA_SUBJECT_TYPES, EMAIL_DOMAIN_PATTERN, ENTITY_TYPES, PEOPLE, RECORD_KIND_NAMES

if TYPE_CHECKING:
    from pydantic import BaseModel

Auth = Literal["anonymous", "user", "app"]


@dataclass(frozen=True)
class QueryParam:
    """A query parameter: its declaration is both the OpenAPI schema and the rule `shared.api.query` applies."""

    name: str
    description: str
    schema_type: Literal["string", "integer", "boolean"] = "string"
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    default: int | bool | None = None
    pattern: str | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.schema_type}
        text = self.schema_type == "string"
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("maxLength", self.max_length if text else None), ("default", self.default),
                           ("pattern", self.pattern)):
            if value is not None:
                schema[key] = value
        return schema


@dataclass(frozen=True)
class Variant:
    """One operation of the OpenAPI document for one value of a path parameter, with a request model of its own:
    `POST /api/sync/users` and `POST /api/sync/activities` document their items, while the host registers the one
    route `sync/{kind}` and the function parses every kind the same way."""

    parameter: str
    value: str
    request: str  # "module:Model" under shared.api
    summary: str


@dataclass(frozen=True)
class Endpoint:
    function_name: str
    method: str
    route: str  # as registered with the Functions host, without the /api prefix
    summary: str
    tag: str
    auth: Auth
    permission: Permission | None = None
    request: str | None = None  # "module:Model" under shared.api
    response: str | None = None
    status: int = 200
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    query: tuple[QueryParam, ...] = ()
    etag: bool = False  # returns ETag and honours If-Match
    description: str = ""
    path_values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # allowed values of path parameters
    retry_after: tuple[int, ...] = ()  # statuses that carry Retry-After (besides 503, which always does)
    variants: tuple[Variant, ...] = ()  # documented one operation each, instead of the route's own

    @property
    def path(self) -> str:
        """The OpenAPI path: `/api/` + route with constraints and optional markers removed."""
        return "/api/" + re.sub(r"\{\*?([A-Za-z0-9_]+)(:[^}]*)?\??\}", r"{\1}", self.route)

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"\{([A-Za-z0-9_]+)\}", self.path)

    def documented(self) -> tuple[Endpoint, ...]:
        """The operations the OpenAPI document lists for this endpoint: itself, or one per variant (operationId
        `{function}_{value}`, the path value in the path, that parameter's allowed values dropped)."""
        if not self.variants:
            return (self,)
        return tuple(replace(
            self, function_name=f"{self.function_name}_{v.value}", request=v.request, summary=v.summary, variants=(),
            route=re.sub(r"\{\*?" + v.parameter + r"(:[^}]*)?\??\}", v.value, self.route),
            path_values=tuple((name, values) for name, values in self.path_values if name != v.parameter))
            for v in self.variants)

    def request_model(self) -> type[BaseModel] | None:
        return None if self.request is None else model(self.request)

    def response_model(self) -> type[BaseModel] | None:
        return None if self.response is None else model(self.response)


def model(reference: str) -> type[BaseModel]:
    module, _, name = reference.partition(":")
    found: type[BaseModel] = getattr(importlib.import_module(f"shared.api.{module}"), name)
    return found


PAGE_SIZE = QueryParam("pageSize", "items per page, 1 to 100", "integer", minimum=1, maximum=100, max_length=3)


def _page_size(default: int) -> QueryParam:
    return QueryParam(PAGE_SIZE.name, f"{PAGE_SIZE.description} (default {default})", "integer", minimum=1,
                      maximum=100, max_length=3, default=default)


def _continuation(max_length: int) -> QueryParam:
    return QueryParam("continuationToken", "from the previous page", max_length=max_length)


# -- service ------------------------------------------------------------------------------------------------

SERVICE_STATUS = Endpoint(
    function_name="service_status", method="GET", route="status", tag="service", auth="anonymous",
    summary="Whether the service can serve: 200 when table storage answers, 503 otherwise.",
    response="models:ServiceStatus", errors=(503,))
OPENAPI = Endpoint(
    function_name="openapi_document", method="GET", route="openapi.json", tag="service", auth="anonymous",
    summary="The OpenAPI 3.1 document of this API.")
ME = Endpoint(
    function_name="me", method="GET", route="me", tag="service", auth="user",
    summary="The calling user's tenant, id, roles and the permissions they grant.", response="models:Caller")

# -- the admin's settings (SPEC 6) -------------------------------------------------------------------------

_BASE = "relationship-intelligence"
_SETTINGS_CONFLICT = (409,)  # "being changed by someone else right now": retried after Retry-After


def _admin(name: str, method: str, route: str, summary: str, **facts: Any) -> Endpoint:
    retry_after = _SETTINGS_CONFLICT if method != "GET" else ()
    return Endpoint(function_name=name, method=method, route=route, summary=summary, tag="settings", auth="user",
                    permission=Permission.MANAGE_SETTINGS, retry_after=retry_after, **facts)


OVERVIEW = _admin("get_overview", "GET", _BASE, "The Overview: state, prerequisites, features, Exchange, consent, "
                  "banner, data sources.", response="settings_models:Overview", etag=True)
PREREQUISITES = _admin("put_prerequisites", "PUT", f"{_BASE}/prerequisites",
                       "Set the organisation profile: Premium Sales Insights and Office 365 data location.",
                       request="settings_models:PrerequisitesRequest", response="settings_models:Overview",
                       etag=True, errors=(409, 412))
ENABLE = _admin("enable", "POST", f"{_BASE}/enable", "Enable relationship intelligence (idempotent).",
                request="settings_models:EnableRequest", response="settings_models:Overview", etag=True,
                errors=(409, 412, 422),
                description="The body is optional. Both features start on; Exchange integration starts on "
                            "when the data location allows it, opening the 14-day consent window.")
DISABLE = _admin("disable", "POST", f"{_BASE}/disable", "Disable relationship intelligence; settings are kept.",
                 response="settings_models:Overview", etag=True, errors=(409, 412))
ROLE_CATALOGUE = _admin("get_security_roles", "GET", "security-roles", "The tenant's security-role catalogue.",
                        response="settings_models:SecurityRolesView")
SECURITY_ROLES = _admin("put_security_roles", "PUT", f"{_BASE}/security-roles",
                        "Select the security roles whose members' Exchange data is used.",
                        request="settings_models:SecurityRolesRequest", response="settings_models:Overview",
                        etag=True, errors=(409, 412, 422))
EXCHANGE = _admin("put_exchange_integration", "PUT", f"{_BASE}/exchange-integration",
                  "Turn Exchange integration on (new consent window if consent is missing) or off.",
                  request="settings_models:ExchangeIntegrationRequest", response="settings_models:Overview",
                  etag=True, errors=(409, 412))
EXCLUDED_GROUPS = _admin("put_excluded_security_groups", "PUT", f"{_BASE}/excluded-security-groups",
                         "Security groups whose members never contribute Exchange data.",
                         request="settings_models:ExcludedGroupsRequest", response="settings_models:Overview",
                         etag=True, errors=(409, 412))
CRM_ENVIRONMENT = _admin("put_crm_environment", "PUT", f"{_BASE}/crm-environment",
                         "Where the tenant's CRM lives: its Dataverse environment URL (null: none).",
                         request="settings_models:CrmEnvironmentRequest", response="settings_models:Overview",
                         etag=True, errors=(409, 412),
                         description="https://{organisation}.crm{N}.dynamics.com. The service then reads the CRM "
                                     "itself (change tracking, with our application user in that environment); "
                                     "another URL starts the CRM sync over.")
ANALYTICS = _admin("put_relationship_analytics", "PUT", f"{_BASE}/features/relationship-analytics",
                   "Relationship analytics and health options; fields left out keep their value.",
                   request="settings_models:RelationshipAnalyticsRequest", response="settings_models:Overview",
                   etag=True, errors=(409, 412))
WHO_KNOWS_WHOM_OPTIONS = _admin("put_who_knows_whom", "PUT", f"{_BASE}/features/who-knows-whom",
                                "Who knows whom: on/off and the introduction email template.",
                                request="settings_models:WhoKnowsWhomRequest", response="settings_models:Overview",
                                etag=True, errors=(409, 412))
AUDIT = _admin("get_audit", "GET", f"{_BASE}/audit", "Audit events, newest first, paged.",
               response="settings_models:AuditPageView", errors=(400,),
               query=(_page_size(20), _continuation(2048)))

# -- admin consent (SPEC 2.5) --------------------------------------------------------------------------------

CONSENT_REQUEST = Endpoint(
    function_name="create_consent_request", method="POST", route=f"{_BASE}/consent-requests",
    summary="A Microsoft 365 admin-consent link for this tenant (single use, 15 minutes).", tag="consent",
    auth="user", permission=Permission.MANAGE_SETTINGS, response="consent_models:ConsentLinkView", status=201,
    errors=(409,))
CONSENT_CALLBACK = Endpoint(
    function_name="consent_callback", method="GET", route="consent/callback", tag="consent", auth="anonymous",
    summary="Where Microsoft sends the admin's browser after the consent page.", media_type="text/html",
    status=302, errors=(400, 503), query=(
        QueryParam("state", "the state our consent link carried", max_length=2048),
        QueryParam("admin_consent", "True when the admin answered the consent page", max_length=16),
        QueryParam("tenant", "the tenant Microsoft says consented (checked against the state)", max_length=64),
        QueryParam("scope", "the scopes consented", max_length=2048),
        QueryParam("error", "set when consent was refused or failed", max_length=64),
        QueryParam("error_description", "Microsoft's text about the error (not shown, not logged)",
                   max_length=2048),
    ),
    description="Redirects to the portal with `consent=granted|declined|invalid`, or shows a small page when no "
                "portal is configured.")

# -- data in (SPEC 7) ----------------------------------------------------------------------------------------

_SYNCED = {"securityRoles": "roles of the tenant's security-role catalogue", "users": "internal users",
           "accounts": "accounts", "contacts": "contacts", "leads": "leads", "opportunities": "opportunities",
           "activities": "activities (metadata of emails, appointments, phone calls, tasks)"}
SYNC = Endpoint(
    function_name="sync_records", method="POST", route="sync/{kind}", tag="data", auth="app",
    permission=Permission.SYNC_DATA, request="sync_models:SyncBatchRequest", response="sync_models:SyncReportView",
    errors=(404, 409), retry_after=(409,), path_values=(("kind", RECORD_KIND_NAMES),),
    summary="Upsert a batch of records or activities (idempotent by id and version).",
    variants=tuple(Variant("kind", kind, f"sync_models:{kind[0].upper()}{kind[1:]}SyncBatch",
                           f"Upsert a batch of {_SYNCED[kind]}; idempotent by id and version.")
                   for kind in RECORD_KIND_NAMES),
    description="Items are validated one by one against the item schema, so one bad item does not refuse the "
                "batch: the answer is 200 whenever the body is an object whose `items` are 1 to 1,000 objects "
                "(at most 8 MiB in all; otherwise 400 or 413), and it lists in `rejected`, with a reason, the "
                "items that break the schema (`invalid`), repeated ids (`duplicateId`), items no stored row can "
                "hold (`tooLarge`) and Exchange items whose data gates of SPEC 3 are closed; the rest are stored. "
                "A batch is stored in transactions of up to 100 items: after a 503 or 409 some of them may be "
                "stored, and sending the same batch again is always safe (a stored version is never stored "
                "twice).")

# -- insights for sellers' apps (SPEC 4) --------------------------------------------------------------------

_TYPES = (("entityType", ENTITY_TYPES),)
_PEOPLE = (("entityType", PEOPLE),)

RECORD_INSIGHTS = Endpoint(
    function_name="get_record_insights", method="GET", route="insights/{entityType}/{id}", tag="insights",
    auth="user", permission=Permission.READ_INSIGHTS, response="insights_models:InsightView", errors=(404, 409),
    path_values=_TYPES, summary="Relationship KPIs and health of one account, contact, lead or opportunity.")
LIST_INSIGHTS = Endpoint(
    function_name="list_insights", method="GET", route="insights/{entityType}", tag="insights", auth="user",
    permission=Permission.READ_INSIGHTS, response="insights_models:InsightPage", errors=(400, 404, 409),
    path_values=_TYPES,
    summary="Records of a type with their health; with needsAttention=true only Poor or Declining, worst first.",
    query=(QueryParam("needsAttention", "only records whose grade is Poor or trend Declining", "boolean",
                      default=False),
           _page_size(50), _continuation(64)))
WHO_KNOWS_WHOM = Endpoint(
    function_name="get_who_knows_whom", method="GET", route="who-knows-whom/{entityType}/{id}",
    tag="insights", auth="user", permission=Permission.READ_WHO_KNOWS_WHOM,
    response="insights_models:IntroducersView", errors=(404, 409), path_values=_PEOPLE,
    summary="Up to five colleagues best placed to introduce you to a lead or contact.")
WHO_KNOWS_WHOM_AT_DOMAIN = Endpoint(
    function_name="get_who_knows_whom_at_domain", method="GET", route="who-knows-whom", tag="insights",
    auth="user", permission=Permission.READ_WHO_KNOWS_WHOM, response="insights_models:IntroducersView",
    errors=(400, 404, 409),
    query=(QueryParam("domain", "an email domain of the company, e.g. fabrikam.com", required=True,
                      max_length=253, pattern=EMAIL_DOMAIN_PATTERN),),
    summary="Up to five colleagues best placed to introduce you to a company (by its email domain).")
INTRODUCTION = Endpoint(
    function_name="get_introduced", method="POST", route="who-knows-whom/{entityType}/{id}/introductions",
    tag="introductions", auth="user", permission=Permission.READ_WHO_KNOWS_WHOM,
    request="introductions_models:GetIntroducedRequest", response="introductions_models:GetIntroducedView",
    errors=(404, 409, 422), path_values=_PEOPLE,
    summary="Get introduced: the drafted email to the introducer, or a request when they ask first.",
    description="With a colleague whose choice is `always` (the tenant's default unless the admin changed it) the "
                "answer is the drafted email, from the tenant's template. With `askFirst` it is a request the "
                "colleague accepts or declines within 14 days; the requester gets the draft once it is accepted.")
RECOMPUTE = Endpoint(
    function_name="recompute_insights", method="POST", route=f"{_BASE}/insights/recompute",
    tag="insights", auth="user", permission=Permission.MANAGE_SETTINGS, response="insights_models:RecomputeView",
    status=202, errors=(409,),
    summary="Ask for a recompute of every insight of the tenant now; follow it at the Location given.",
    description="The background work recomputes after data or settings change, and daily; this asks for one now. "
                "The answer is 202 with the recompute's status and `Location`, which GET polls.")
RECOMPUTE_STATUS = Endpoint(
    function_name="get_recompute_status", method="GET", route=f"{_BASE}/insights/recompute",
    tag="insights", auth="user", permission=Permission.MANAGE_SETTINGS, response="insights_models:RecomputeView",
    summary="The status of the tenant's latest full recompute of its insights.")
EXPORT = Endpoint(
    function_name="export_data_subject", method="GET", route="data-subjects/{entityType}/{id}", tag="privacy",
    auth="user", permission=Permission.MANAGE_SETTINGS, response="insights_models:DataSubjectExport",
    errors=(404,), path_values=(("entityType", DATA_SUBJECT_TYPES),),
    summary="Everything stored about one person: record, activity metadata, computed insights (SPEC 4.4).")

# -- introducers who consent -----------------------------------------------------------------------------------

MY_INTRODUCER_CHOICE = Endpoint(
    function_name="get_my_introducer_choice", method="GET", route="me/introducer-choice", tag="introductions",
    auth="user", permission=Permission.READ_INSIGHTS, response="introductions_models:IntroducerChoiceView",
    errors=(404,), summary="How I appear in who knows whom: always, askFirst or never (or the tenant's default).")
SET_MY_INTRODUCER_CHOICE = Endpoint(
    function_name="set_my_introducer_choice", method="PUT", route="me/introducer-choice", tag="introductions",
    auth="user", permission=Permission.READ_INSIGHTS, request="introductions_models:IntroducerChoiceRequest",
    response="introductions_models:IntroducerChoiceView", errors=(404, 409), retry_after=(409,),
    summary="Choose how I appear in who knows whom; `never` takes me off every list from the next read.")
MY_INTRODUCTION_REQUESTS = Endpoint(
    function_name="list_my_introduction_requests", method="GET", route="me/introduction-requests",
    tag="introductions", auth="user", permission=Permission.READ_INSIGHTS,
    response="introductions_models:IntroductionRequestPage", errors=(400, 404),
    query=(QueryParam("side", "introducer: the requests to me (default); requester: mine", pattern=
                      "^(introducer|requester)$", max_length=10),
           _page_size(20), _continuation(2048)),
    summary="Introduction requests to me or from me, newest first.")
INTRODUCTION_REQUEST = Endpoint(
    function_name="get_introduction_request", method="GET", route="introduction-requests/{id}",
    tag="introductions", auth="user", permission=Permission.READ_INSIGHTS,
    response="introductions_models:IntroductionRequestView", errors=(404,),
    summary="One introduction request of mine (the requester's or the introducer's); the draft once accepted.")
ACCEPT_INTRODUCTION = Endpoint(
    function_name="accept_introduction_request", method="POST", route="introduction-requests/{id}/accept",
    tag="introductions", auth="user", permission=Permission.READ_INSIGHTS,
    response="introductions_models:IntroductionRequestView", errors=(403, 404, 409), retry_after=(409,),
    summary="Accept a request to me: the requester gets the drafted email.")
DECLINE_INTRODUCTION = Endpoint(
    function_name="decline_introduction_request", method="POST", route="introduction-requests/{id}/decline",
    tag="introductions", auth="user", permission=Permission.READ_INSIGHTS,
    response="introductions_models:IntroductionRequestView", errors=(403, 404, 409), retry_after=(409,),
    summary="Decline a request to me.")

RELATIONSHIPS_AT_RISK = Endpoint(
    function_name="list_relationships_at_risk", method="GET", route="relationships-at-risk", tag="insights",
    auth="user", permission=Permission.READ_RELATIONSHIPS_AT_RISK, response="insights_models:AtRiskPage",
    errors=(400, 409), query=(_page_size(25), _continuation(64)),
    summary=("Managers: the accounts and contacts whose strongest tie left (a deactivated colleague) and that no "
             "remaining colleague knows well, worst first: the most open revenue at stake first."))

ALL: tuple[Endpoint, ...] = (
    SERVICE_STATUS, OPENAPI, ME,
    OVERVIEW, PREREQUISITES, ENABLE, DISABLE, ROLE_CATALOGUE, SECURITY_ROLES, EXCHANGE, EXCLUDED_GROUPS,
    CRM_ENVIRONMENT, ANALYTICS, WHO_KNOWS_WHOM_OPTIONS, AUDIT,
    CONSENT_REQUEST, CONSENT_CALLBACK,
    SYNC,
    RECORD_INSIGHTS, LIST_INSIGHTS, WHO_KNOWS_WHOM, WHO_KNOWS_WHOM_AT_DOMAIN, INTRODUCTION, RECOMPUTE,
    RECOMPUTE_STATUS, EXPORT, RELATIONSHIPS_AT_RISK,
    MY_INTRODUCER_CHOICE, SET_MY_INTRODUCER_CHOICE, MY_INTRODUCTION_REQUESTS, INTRODUCTION_REQUEST,
    ACCEPT_INTRODUCTION, DECLINE_INTRODUCTION,
)

# What the OpenAPI document lists: every endpoint, the ones with variants once per variant.
DOCUMENTED: tuple[Endpoint, ...] = tuple(documented for endpoint in ALL for documented in endpoint.documented())

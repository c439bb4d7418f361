"""Microsoft 365 admin consent: the admin asks for a link; Microsoft sends the browser back to the callback.

The callback is the one anonymous entry point that changes state. It trusts nothing from the request but
the state's secret, and it redirects only to the portal URL of the configuration."""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e
from shared.errors import Conflict, ServiceUnavailable

if TYPE_CHECKING:
    from shared.api import consent_models as m
    from shared.services.consent import CallbackResult
else:
    m = lazy_module("shared.api.consent_models")

log = logging.getLogger(__name__)

bp = func.Blueprint()

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
}

_PAGES = {
    "en": {
        "granted": ("Consent recorded", "The Microsoft 365 admin's consent is in place: Exchange data can now feed "
                    "relationship intelligence. You can close this page and return to the settings."),
        "declined": ("Consent not given", "Consent was not given or could not be confirmed ({reason}). Ask for a "
                     "new consent link from the relationship intelligence settings and try again."),
        "invalid": ("Link not valid", "This consent link is invalid, has expired or was already used. Ask for a "
                    "new consent link from the relationship intelligence settings."),
        "unavailable": ("Try again shortly", "The service is briefly unavailable. Ask for a new consent link in "
                        "a few minutes."),
    },
    "fr": {
        "granted": ("Consentement enregistré", "Le consentement de l'administrateur Microsoft 365 est en place : "
                    "les données Exchange peuvent désormais alimenter l'intelligence relationnelle. Vous pouvez "
                    "fermer cette page et revenir aux paramètres."),
        "declined": ("Consentement non donné", "Le consentement n'a pas été donné ou n'a pas pu être confirmé "
                     "({reason}). Demandez un nouveau lien de consentement depuis les paramètres de "
                     "l'intelligence relationnelle et réessayez."),
        "invalid": ("Lien non valide", "Ce lien de consentement n'est pas valide, a expiré ou a déjà servi. "
                    "Demandez un nouveau lien depuis les paramètres de l'intelligence relationnelle."),
        "unavailable": ("Réessayez dans un instant", "Le service est momentanément indisponible. Demandez un "
                        "nouveau lien de consentement dans quelques minutes."),
    },
}


@route(bp, e.CONSENT_REQUEST)
def create_consent_request(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        link = call.container.consent().request_link(call.tenant, call.actor)
        return json_response(m.ConsentLinkView(consent_url=link.url, expires_at=link.expires_at), status=201)

    return respond(req, e.CONSENT_REQUEST, work)


@route(bp, e.CONSENT_CALLBACK)
def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        try:
            result = call.container.consent().complete(dict(req.params))
        except (ServiceUnavailable, Conflict) as error:
            # Storage trouble, or the settings contended past our retries: a person reads this, not a program.
            log.warning("consent callback could not complete: %s", error.detail)
            return _page(req, "unavailable", "", 503, {"Retry-After": error.headers.get("Retry-After", "5")})
        log.info("consent callback: %s (%s)", result.outcome, result.reason if result.outcome != "granted" else "")
        portal = call.container.config.portal_url
        if portal:
            return _redirect(portal, result)
        status = 400 if result.outcome == "invalid" else 200
        return _page(req, result.outcome, result.reason, status)

    return respond(req, e.CONSENT_CALLBACK, work)


def _redirect(portal: str, result: CallbackResult) -> func.HttpResponse:
    parts = urlsplit(portal)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "consent"]
    query.append(("consent", result.outcome))
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return func.HttpResponse(status_code=302, headers={**_SECURITY_HEADERS, "Location": location})


def _language(req: func.HttpRequest) -> str:
    for part in (req.headers.get("Accept-Language") or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in _PAGES:
            return tag[:2]
    return "en"


def _page(req: func.HttpRequest, outcome: str, reason: str, status: int,
          extra_headers: dict[str, str] | None = None) -> func.HttpResponse:
    language = _language(req)
    title, text = _PAGES[language][outcome]
    body = (f"<!doctype html><html lang=\"{language}\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            "</title><meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"font-family:"
            "sans-serif;max-width:36em;margin:3em auto;line-height:1.5\">"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text.format(reason=reason))}</p></body></html>")
    return func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8",
                             headers={**_SECURITY_HEADERS, **(extra_headers or {})})

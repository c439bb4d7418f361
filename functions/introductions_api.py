"""Introducers who consent: "Get introduced", each colleague's choice, and the requests of colleagues who ask
first (shared.domain.introductions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e

if TYPE_CHECKING:
    from shared.api import introductions_models as m
else:
    m = lazy_module("shared.api.introductions_models")

bp = func.Blueprint()


@route(bp, e.INTRODUCTION)
def get_introduced(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.GetIntroducedRequest = call.body()
        result = call.container.introductions().get_introduced(
            call.tenant, call.path_choice("entityType"), call.path("id"), body.introducer_id, requester_id=call.actor,
            requester_name=call.caller.display_name, message=body.message)
        return json_response(m.get_introduced_view(result))

    return respond(req, e.INTRODUCTION, work)


@route(bp, e.MY_INTRODUCER_CHOICE)
def get_my_introducer_choice(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        return json_response(m.choice_view(call.container.introductions().my_choice(call.tenant, call.actor)))

    return respond(req, e.MY_INTRODUCER_CHOICE, work)


@route(bp, e.SET_MY_INTRODUCER_CHOICE)
def set_my_introducer_choice(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.IntroducerChoiceRequest = call.body()
        choice = call.container.introductions().set_my_choice(call.tenant, call.actor, body.choice)
        return json_response(m.choice_view(choice))

    return respond(req, e.SET_MY_INTRODUCER_CHOICE, work)


@route(bp, e.MY_INTRODUCTION_REQUESTS)
def list_my_introduction_requests(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        query = call.query()
        side: Literal["introducer", "requester"] = "requester" if query.text("side") == "requester" else "introducer"
        page = call.container.introductions().requests(call.tenant, call.actor, side,
                                                       page_size=query.integer("pageSize"),
                                                       continuation=query.text("continuationToken"))
        return json_response(m.page_view(page))

    return respond(req, e.MY_INTRODUCTION_REQUESTS, work)


@route(bp, e.INTRODUCTION_REQUEST)
def get_introduction_request(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        seen = call.container.introductions().request(call.tenant, call.actor, call.path("id"))
        return json_response(m.request_view(seen))

    return respond(req, e.INTRODUCTION_REQUEST, work)


@route(bp, e.ACCEPT_INTRODUCTION)
def accept_introduction_request(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        seen = call.container.introductions().decide(call.tenant, call.actor, call.path("id"), "accepted")
        return json_response(m.request_view(seen))

    return respond(req, e.ACCEPT_INTRODUCTION, work)


@route(bp, e.DECLINE_INTRODUCTION)
def decline_introduction_request(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        seen = call.container.introductions().decide(call.tenant, call.actor, call.path("id"), "declined")
        return json_response(m.request_view(seen))

    return respond(req, e.DECLINE_INTRODUCTION, work)

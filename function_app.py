"""The Functions app: one FunctionApp, one Blueprint per concern. Nothing else happens at import time."""

import azure.functions as func

from functions import (
    api_docs,
    caller,
    consent,
    consent_timer,
    health,
    insights_api,
    settings_api,
    sync_api,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

BLUEPRINTS = (health.bp, api_docs.bp, caller.bp, settings_api.bp, consent.bp, consent_timer.bp, sync_api.bp,
              insights_api.bp)

for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)

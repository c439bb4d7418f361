"""The Functions app: one FunctionApp, one Blueprint per concern. Nothing else happens at import time: the
endpoint catalogue is plain data, and models, adapters and SDKs load on the first invocation that needs them."""

import azure.functions as func

from functions import (
    api_docs,
    background,
    caller,
    consent,
    insights_api,
    introductions_api,
    service_status,
    settings_api,
    sync_api,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

BLUEPRINTS = (service_status.bp, api_docs.bp, caller.bp, settings_api.bp, consent.bp, background.bp, sync_api.bp,
              insights_api.bp, introductions_api.bp)

for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)

"""Indexing a FunctionApp the way the worker does, repeatably.

`FunctionApp.get_functions()` records the names it has seen in `functions_bindings` and raises on a
second call (the worker calls it once per process). The dev host and the tests index the same app
more than once, so they clear that record first.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func


def index(app: func.FunctionApp) -> list[Any]:
    app.functions_bindings = {}
    return list(app.get_functions())

"""Reading request bodies into models, with every bad input turned into a precise problem."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, field_problems

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024
MAX_SYNC_BODY_BYTES = 8 * 1024 * 1024


def parse_json_body(body: bytes, content_type: str | None, model: type[M], *, max_bytes: int = MAX_BODY_BYTES) -> M:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the request body is larger than {max_bytes // 1024} KiB")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (media_type.startswith("application/") and
                                                 media_type.endswith("+json")):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("the request body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from exc
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object",
                               errors=[{"field": "", "reason": "expected an object"}])
    try:
        # Validated from the JSON text so that strict models take enums and dates from JSON strings.
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise ValidationFailed("the request body has invalid fields", errors=field_problems(exc)) from exc

from __future__ import annotations

import json
import logging

import pytest

from shared import observability


def test_records_carry_tenant_and_operation_and_secrets_are_cut(caplog: pytest.LogCaptureFixture) -> None:
    observability.install()
    logger = logging.getLogger("test.observability")
    with caplog.at_level(logging.INFO):
        with observability.log_context(operation_id="op-1"):
            observability.bind_tenant("t-1")
            logger.info("token was Bearer eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2ln and more")
        logger.info("outside")
    inside, outside = caplog.records[-2], caplog.records[-1]
    assert (inside.tenant_id, inside.operation_id) == ("t-1", "op-1")  # type: ignore[attr-defined]
    assert (outside.tenant_id, outside.operation_id) == (None, None)  # type: ignore[attr-defined]
    line = json.loads(observability.JsonFormatter().format(inside))
    assert line["tenantId"] == "t-1"
    assert line["operationId"] == "op-1"
    assert "eyJ" not in line["message"]
    assert "[redacted]" in line["message"]


def test_operation_id_comes_from_traceparent_when_present() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert observability.operation_id_from(trace) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(observability.operation_id_from("garbage")) == 32
    assert observability.operation_id_from(None) != observability.operation_id_from(None)

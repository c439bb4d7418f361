"""What a queue-triggered function does with a message: the step of its kind of work for its tenant, under the
message's operation id. A step that raises leaves the message to the host, which delivers it again (and moves it
to the poison queue after its last attempt); every step may run twice, late, or out of order."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from shared import observability
from shared.services.ports import IndexEntry, WorkKind, WorkMessage
from shared.tenancy import TenantId

log = logging.getLogger(__name__)


class Work(Protocol):
    """One kind of background work: a step for one tenant, given the index rows that asked for it."""

    @property
    def kind(self) -> WorkKind: ...

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str: ...


class TargetedWork(Work, Protocol):
    """Work fanned out within a tenant (one mailbox's round): a step for what the message names."""

    def run_for(self, tenant_id: TenantId, target: str, rows: list[IndexEntry]) -> str: ...


class BackgroundWorker:
    def __init__(self, works: Mapping[WorkKind, Work], targeted: Mapping[WorkKind, TargetedWork] | None = None,
                 ) -> None:
        self.works = dict(works)
        self.targeted = dict(targeted or {})

    def handle(self, message: WorkMessage) -> str:
        with observability.log_context(tenant_id=message.tenant_id, operation_id=message.operation_id):
            targeted = self.targeted.get(message.kind)
            if targeted is not None and message.target is not None:
                outcome = targeted.run_for(message.tenant_id, message.target, message.entries())
            else:
                outcome = self.works[message.kind].run(message.tenant_id, message.entries())
            log.info("%s: %s", message.kind.value, outcome)
            return outcome

"""Background work on the queues (SPEC 8): the timer (every 5 minutes by default) only puts due work on them, and
one queue-triggered function per kind of work does each tenant's step. The platform spreads the queues' messages
over instances."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import observability
from shared.services.work import WorkKind

log = logging.getLogger(__name__)

bp = func.Blueprint()
CONNECTION = "AzureWebJobsStorage"  # the host's storage account holds the queues


@bp.function_name("schedule_background_work")
@bp.timer_trigger(schedule="%RI_BACKGROUND_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def schedule_background_work(timer: func.TimerRequest) -> None:
    with observability.log_context(operation_id=observability.operation_id_from(None)):
        if timer.past_due:
            log.info("the background timer is running late; sending everything due")
        from shared import bootstrap  # loaded when the timer first fires, not when the host indexes the app

        bootstrap.container().scheduler().run()


def _work(message: func.QueueMessage) -> None:
    from shared import bootstrap
    from shared.services.ports import WorkMessage

    try:
        work = WorkMessage.from_json(message.get_body().decode("utf-8"))
    except (ValueError, KeyError, TypeError):
        log.error("queue message %s is not one of ours; dropped", message.id)
        return  # a retry cannot make it readable: no poison-queue round trip for it
    bootstrap.container().worker().handle(work)


@bp.function_name("enforce_consent_deadline")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.CONSENT_DEADLINE.queue, connection=CONNECTION)
def enforce_consent_deadline(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("recheck_consent")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.CONSENT_RECHECK.queue, connection=CONNECTION)
def recheck_consent(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("purge_exchange_data")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.EXCHANGE_PURGE.queue, connection=CONNECTION)
def purge_exchange_data(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("purge_opted_out_data")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.OPT_OUT_PURGE.queue, connection=CONNECTION)
def purge_opted_out_data(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("update_insights")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.INSIGHTS_UPDATE.queue, connection=CONNECTION)
def update_insights(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("sync_crm")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.CRM_ROUND.queue, connection=CONNECTION)
def sync_crm(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("plan_mailboxes")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.MAILBOX_PLAN.queue, connection=CONNECTION)
def plan_mailboxes(message: func.QueueMessage) -> None:
    _work(message)


@bp.function_name("sync_mailbox")
@bp.queue_trigger(arg_name="message", queue_name=WorkKind.MAILBOX_ROUND.queue, connection=CONNECTION)
def sync_mailbox(message: func.QueueMessage) -> None:
    _work(message)

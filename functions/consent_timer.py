"""Timer `consent_deadline`: the 14-day auto-disable and the daily re-check of granted consent."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import observability

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("consent_deadline")
@bp.timer_trigger(schedule="%RI_DEADLINE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def consent_deadline(timer: func.TimerRequest) -> None:
    with observability.log_context(operation_id=observability.operation_id_from(None)):
        if timer.past_due:
            log.info("consent timer is running late; catching up on everything due")
        from shared import bootstrap  # loaded when the timer first fires, not when the host indexes the app

        bootstrap.services().consent_timer().run()

"""The hourly timer of the background work: the 14-day rule, consent re-checks, purges and insight updates."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import observability

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("schedule_background_work")
@bp.timer_trigger(schedule="%RI_BACKGROUND_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def schedule_background_work(timer: func.TimerRequest) -> None:
    with observability.log_context(operation_id=observability.operation_id_from(None)):
        if timer.past_due:
            log.info("the background timer is running late; catching up on everything due")
        from shared import bootstrap  # loaded when the timer first fires, not when the host indexes the app

        bootstrap.container().background().run()

"""What one activity says about a tie (SPEC 4.3b): automated senders say nothing, mass mail says little.

Research on email ties dropped messages with more than four recipients; we keep them, discounted: an activity
with n other parties weighs 1 up to MASS_MAIL_RECIPIENTS of them and MASS_MAIL_RECIPIENTS / n beyond.
"""

from __future__ import annotations

from shared.domain.records import Activity

MASS_MAIL_RECIPIENTS = 4

# Senders that are machines, not relationships.
AUTOMATED_PREFIXES = ("noreply", "no-reply", "donotreply", "do-not-reply", "notifications", "newsletter",
                      "mailer-daemon", "postmaster", "bounce")


def is_automated(address: str) -> bool:
    return address.split("@", 1)[0].lower().startswith(AUTOMATED_PREFIXES)


def from_a_machine(activity: Activity) -> bool:
    return bool(activity.sender and is_automated(activity.sender))


def mass_mail_weight(activity: Activity) -> float:
    others = len(activity.parties) - 1
    return 1.0 if others <= MASS_MAIL_RECIPIENTS else MASS_MAIL_RECIPIENTS / others

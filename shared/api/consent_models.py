"""Responses of the admin-consent API (SPEC 2.5)."""

from __future__ import annotations

from datetime import datetime

from shared.api.models import ApiModel


class ConsentLinkView(ApiModel):
    consent_url: str
    expires_at: datetime

"""The portal speaks English and French: every text has both (a missing French key would show English)."""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = (Path(__file__).resolve().parents[2] / "portal" / "i18n.js").read_text(encoding="utf-8")
KEY = re.compile(r'^\s*"([A-Za-z0-9_.]+)":|,\s*"([A-Za-z0-9_.]+)":', re.MULTILINE)


def keys(table: str, language: str, following: str) -> set[str]:
    body = SOURCE[SOURCE.index(f"const {table} = {{"):]
    part = body[body.index(f"  {language}: {{"):body.index(following)]
    return {a or b for a, b in KEY.findall(part)}


def test_every_text_has_english_and_french() -> None:
    english, french = keys("STRINGS", "en", "  fr: {"), keys("STRINGS", "fr", "\n};")
    assert len(english) > 100
    assert english - french == set()
    assert french - english == set()

"""local.settings.json, read the way Core Tools reads it: its `Values` become environment variables."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SETTINGS = ROOT / "local.settings.json"
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"
STATE_DIR = ROOT / ".devhost"


def load_values(path: Path | None = None) -> dict[str, str]:
    """The settings' Values; creates local.settings.json from the sample on first use."""
    if path is None:
        if not LOCAL_SETTINGS.exists():
            shutil.copyfile(SAMPLE_SETTINGS, LOCAL_SETTINGS)
        path = LOCAL_SETTINGS
    data = json.loads(path.read_text())
    values = data.get("Values", {})
    return {str(k): str(v) for k, v in values.items()}


def apply_to_environment(values: dict[str, str]) -> None:
    """Like Core Tools: variables already set in the environment win over the file."""
    for key, value in values.items():
        os.environ.setdefault(key, value)


def effective(values: dict[str, str], key: str, default: str = "") -> str:
    return os.environ.get(key) or values.get(key) or default

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


def _values(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data.get("Values", {}).items()}


def load_values(path: Path | None = None) -> dict[str, str]:
    """The settings' Values; creates local.settings.json from the sample on first use. A setting added to the
    sample later still reaches an older local.settings.json as a default."""
    if path is None:
        if not LOCAL_SETTINGS.exists():
            shutil.copyfile(SAMPLE_SETTINGS, LOCAL_SETTINGS)
        path = LOCAL_SETTINGS
    return {**_values(SAMPLE_SETTINGS), **_values(path)}


def apply_to_environment(values: dict[str, str]) -> None:
    """Like Core Tools: variables already set in the environment win over the file."""
    for key, value in values.items():
        os.environ.setdefault(key, value)


def effective(values: dict[str, str], key: str, default: str = "") -> str:
    return os.environ.get(key) or values.get(key) or default

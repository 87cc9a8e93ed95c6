"""Every setting is documented in the README."""
from __future__ import annotations

from pathlib import Path

from kb.settings import SETTINGS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented():
    text = README.read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"| {s.key} | `{s.env}` |" in text, s.key
        assert s.help in text, s.key

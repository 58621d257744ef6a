"""The documents a user follows stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from m2m_auth.server.settings import Settings, settings_reference

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_reference_matches_the_settings_in_the_code() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_reference(), (
        "regenerate it: m2m-auth settings > docs/configuration.md"
    )


def test_every_setting_the_readme_names_exists() -> None:
    named = set(re.findall(r"M2M_AUTH_([A-Z_]+[A-Z])", (ROOT / "README.md").read_text()))
    known = {name.upper() for name in Settings.model_fields} | {"URL", "CLIENT_ID", "CLIENT_SECRET"}
    assert named - known == set()


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()

"""bench/_results.py: each benchmark rewrites only its own section of bench/RESULTS.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_results() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "_results.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results = load_results()

SOAK = "<!-- begin:soak -->\n# Soak\n\nrows flat\n<!-- end:soak -->\n"


def test_a_new_section_is_appended_and_the_others_stay_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(SOAK)
    results.write_section("compare", "# Compare\n\n| a | b |", path)
    assert path.read_text() == SOAK + "\n<!-- begin:compare -->\n# Compare\n\n| a | b |\n<!-- end:compare -->\n"


def test_writing_a_section_again_replaces_only_its_text(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(SOAK)
    results.write_section("compare", "first", path)
    results.write_section("sdk", "sdk figures", path)
    results.write_section("compare", "second\n$1 \\1 stays literal", path)
    text = path.read_text()
    assert text.startswith(SOAK)
    assert results.read_section("compare", path) == "second\n$1 \\1 stays literal"
    assert results.read_section("sdk", path) == "sdk figures"
    assert "first" not in text
    assert text.index("begin:compare") < text.index("begin:sdk")  # a rewritten section keeps its place


def test_a_missing_file_gets_the_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    results.write_section("sdk", "x", path)
    assert path.read_text() == "<!-- begin:sdk -->\nx\n<!-- end:sdk -->\n"
    assert results.read_section("compare", path) is None


def test_the_real_results_file_keeps_the_soak_section_in_its_markers() -> None:
    assert (results.read_section("soak") or "").startswith("# Soak results (issue #8)")


def test_a_section_name_cannot_smuggle_a_pattern(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        results.write_section("a.*", "x", tmp_path / "RESULTS.md")

"""Import boundaries that the layout promises (STYLE.md): each checked in a fresh interpreter with modules blocked.

- The protocol core (`m2m_auth.server.core`) imports neither Starlette nor SQLAlchemy.
- The light SDK install (`pip install m2m-auth`: httpx and joserfc only) imports nothing from the server extras.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = ROOT / "src" / "m2m_auth" / "server" / "core"

# Imported in a child interpreter in which every name in `blocked` (and its submodules) fails to import.
# It prints {module: null, or {"blocked": the blocked module it needed or null, "error": traceback}},
# having first checked that the block itself works.
CHILD = textwrap.dedent(
    """
    import importlib, json, sys, traceback

    blocked, modules = json.loads(sys.argv[1])

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in blocked:
                raise ImportError(f"{name} is blocked in this test", name=name)
            return None

    for name in blocked:
        assert not any(m == name or m.startswith(name + ".") for m in sys.modules), f"{name} loaded at start-up"
        sys.modules[name] = None
    sys.meta_path.insert(0, Blocker())
    for name in blocked:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the block does not work: {name} imported")

    results = {}
    for module in modules:
        try:
            importlib.import_module(module)
            results[module] = None
        except BaseException as exc:
            culprit = (getattr(exc, "name", None) or "").partition(".")[0]
            results[module] = {
                "blocked": culprit if isinstance(exc, ImportError) and culprit in blocked else None,
                "error": traceback.format_exc(limit=-4),
            }
    print(json.dumps(results))
    """
)


def import_with_blocked(blocked: list[str], modules: list[str]) -> dict[str, dict[str, str | None] | None]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([blocked, modules])],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def core_modules() -> list[str]:
    names = []
    for path in sorted(CORE_DIR.rglob("*.py")):
        parts = path.relative_to(CORE_DIR.parents[2]).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_core_module_imports_without_starlette_or_sqlalchemy() -> None:
    modules = core_modules()
    # Guard against a walk that finds nothing (then the test would pass vacuously).
    assert {"m2m_auth.server.core", "m2m_auth.server.core.server", "m2m_auth.server.core.client_auth"} <= set(modules)
    results = import_with_blocked(["starlette", "sqlalchemy"], modules)
    failures = {module: failure for module, failure in results.items() if failure is not None}
    assert not failures, "core modules that need Starlette or SQLAlchemy:\n" + "\n".join(
        f"--- {module} (needs {failure['blocked']})\n{failure['error']}" for module, failure in failures.items()
    )


def server_extras() -> list[str]:
    """Import names of everything the [server] and [postgres] extras add (import name = distribution name here)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for extra in ("server", "postgres"):
        for requirement in project["optional-dependencies"].get(extra, []):
            name = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            names.add(name.strip().lower().replace("-", "_"))
    names.discard("m2m_auth")  # [postgres] pulls in [server]
    return sorted(names)


# What the brief of issue 01 names, whatever pyproject.toml says at the moment.
SERVER_ONLY = ["starlette", "sqlalchemy", "uvicorn", "alembic", "typer", "pydantic_settings"]
# What the bare `pip install m2m-auth` must be able to import.
LIGHT_MODULES = ["m2m_auth", "m2m_auth.errors", "m2m_auth.scopes"]
# The SDK packages (STYLE.md): checked as soon as they exist, so nobody has to remember to add them here.
SDK_PACKAGES = ["m2m_auth.client", "m2m_auth.resource"]


def light_modules() -> list[str]:
    src = ROOT / "src"
    present = []
    for name in SDK_PACKAGES:
        path = src.joinpath(*name.split("."))
        if (path / "__init__.py").exists() or path.with_suffix(".py").exists():
            present.append(name)
    return LIGHT_MODULES + present


def test_the_light_sdk_footprint_imports_without_any_server_extra() -> None:
    blocked = sorted(set(SERVER_ONLY) | set(server_extras()))
    assert {"starlette", "sqlalchemy", "pydantic_settings"} <= set(blocked)
    results = import_with_blocked(blocked, light_modules())
    failures = {module: failure for module, failure in results.items() if failure is not None}
    assert not failures, "modules of the light install that need a server extra:\n" + "\n".join(
        f"--- {module} (needs {failure['blocked']})\n{failure['error']}" for module, failure in failures.items()
    )


@pytest.mark.parametrize(
    "module", ["m2m_auth.server.asgi.app", "m2m_auth.server.storage.sql.store"], ids=["starlette edge", "sql storage"]
)
def test_the_block_catches_a_module_that_does_import_them(module: str) -> None:
    # The check above can fail: the modules that legitimately import Starlette or SQLAlchemy are refused by it.
    failure = import_with_blocked(["starlette", "sqlalchemy"], [module])[module]
    assert failure is not None and failure["blocked"] in ("starlette", "sqlalchemy"), failure

"""The `m2m-auth` command line.

`serve`, `migrate`, `admin-token`, `purge`, `stats` and `keys reseal` work on the database directly; every other
command talks to a running server over HTTP (`--url`), so that server caches stay correct and nothing
needs database credentials on an operator's laptop.

Exit codes: 0 success; 1 the server refused, the token is not active, or `migrate --check` found the
schema behind; 2 usage or settings error; 3 the server or database could not be reached.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import httpx
import typer

__all__ = ["app"]

app = typer.Typer(
    help="m2m-auth: OAuth 2 client-credentials server for service-to-service authentication.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
clients_app = typer.Typer(help="Register and manage clients (admin API).", no_args_is_help=True)
admin_token_app = typer.Typer(help="The bootstrap admin token.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys of JWT access tokens.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_token_app, name="admin-token")

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Database URL (env M2M_AUTH_DATABASE_URL).", show_default=False)
]
Url = Annotated[
    str | None,
    typer.Option("--url", help="Server base URL (env M2M_AUTH_URL, else M2M_AUTH_ISSUER).", show_default=False),
]
AdminToken = Annotated[
    str | None,
    typer.Option("--admin-token", envvar="M2M_AUTH_ADMIN_TOKEN", help="Admin bearer token.", show_envvar=True),
]
ClientId = Annotated[str | None, typer.Option("--client-id", envvar="M2M_AUTH_CLIENT_ID", show_envvar=True)]
ClientSecret = Annotated[str | None, typer.Option("--client-secret", envvar="M2M_AUTH_CLIENT_SECRET", show_envvar=True)]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str, code: int) -> NoReturn:
    # One line: driver errors append SQL, parameters and links on lines of their own.
    typer.echo(f"m2m-auth: {message.strip().splitlines()[0] if message.strip() else message}", err=True)
    raise typer.Exit(code)


# --- server and database ------------------------------------------------------------------------


def _settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from m2m_auth.server.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        _fail(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}", EXIT_USAGE)


def _run_migrations(database_url: str) -> str | None:
    from m2m_auth.server.storage import migrate
    from m2m_auth.server.storage.sql.engine import create_engine, redact

    async def run() -> str | None:
        engine = create_engine(database_url)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        _fail(f"cannot reach the database {redact(database_url)}: {exc}", EXIT_UNREACHABLE)
    except Exception as exc:  # noqa: BLE001 - driver errors come in many classes; say what failed, not the password
        _fail(f"migration of {redact(database_url)} failed: {type(exc).__name__}: {exc}", EXIT_UNREACHABLE)


def _check_schema(database_url: str) -> None:
    """Refuse to start on an unmigrated database with one clear line, not a traceback."""
    from m2m_auth.server.storage import migrate
    from m2m_auth.server.storage.sql.engine import create_engine, redact

    async def current() -> str | None:
        engine = create_engine(database_url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(current())
    except Exception as exc:  # noqa: BLE001 - driver errors come in many classes
        _fail(f"cannot reach the database {redact(database_url)}: {type(exc).__name__}: {exc}", EXIT_UNREACHABLE)
    if revision != migrate.head_revision():
        _fail(
            f"the database {redact(database_url)} is at schema {revision or 'none'}, this server needs "
            f"{migrate.head_revision()}: run `m2m-auth migrate` first (or `serve --migrate`)",
            EXIT_USAGE,
        )


def _check_keys(settings: Any) -> None:
    """The key-encryption key must open every stored signing key: say so in one line, before serving."""
    from m2m_auth.server.keys import KeyConfigError, KeySealer
    from m2m_auth.server.storage.sql.store import SqlStorage

    async def check() -> None:
        sealer = KeySealer.from_settings(settings)
        if settings.production and not sealer.encrypting:
            raise KeyConfigError("production mode needs M2M_AUTH_KEY_ENCRYPTION_KEY (`m2m-auth keys generate-kek`)")
        storage = SqlStorage.from_url(settings.database_url)
        try:
            for stored in await storage.list_keys():
                sealer.open(stored)
        finally:
            await storage.close()

    try:
        asyncio.run(check())
    except KeyConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - driver errors come in many classes
        _fail(f"cannot read the signing keys: {type(exc).__name__}: {exc}", EXIT_UNREACHABLE)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    issuer: Annotated[
        str | None, typer.Option(help="Public base URL (env M2M_AUTH_ISSUER; default http://HOST:PORT).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
    migrate: Annotated[
        bool | None, typer.Option(help="Migrate the schema first (default: on for SQLite, off for PostgreSQL).")
    ] = None,
) -> None:
    """Run the authorization server."""
    import uvicorn

    from m2m_auth.server.storage.sql.engine import is_sqlite

    if database_url:
        os.environ["M2M_AUTH_DATABASE_URL"] = database_url
    if issuer:
        os.environ["M2M_AUTH_ISSUER"] = issuer
    elif "M2M_AUTH_ISSUER" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["M2M_AUTH_ISSUER"] = f"http://{shown}:{port}"
    if log_level:
        os.environ["M2M_AUTH_LOG_LEVEL"] = log_level
    settings = _settings()
    try:
        sqlite = is_sqlite(settings.database_url)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    if migrate if migrate is not None else sqlite:
        _run_migrations(settings.database_url)
    else:
        _check_schema(settings.database_url)
    _check_keys(settings)
    uvicorn.run(
        "m2m_auth.server.asgi.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def _schema_step(database_url: str, check: bool) -> str | None:
    """Upgrade the schema (or, with `check`, only read it); the revision it is at. Driver errors propagate."""
    from m2m_auth.server.storage import migrate
    from m2m_auth.server.storage.sql.engine import create_engine

    async def run() -> str | None:
        engine = create_engine(database_url)
        try:
            if not check:
                await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command("migrate")
def migrate_command(
    database_url: DatabaseUrl = None,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing: exit 0 if the schema is up to date, 1 if it is behind.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep retrying while the database cannot be reached (with --check: also while the schema "
            "is behind). A Kubernetes init container waits for the migration Job with `migrate --check --wait 600`.",
        ),
    ] = 0,
) -> None:
    """Create or upgrade the database schema (concurrent runs on PostgreSQL take turns)."""
    from m2m_auth.server.storage import migrate
    from m2m_auth.server.storage.sql.engine import async_url, redact

    url: str = _settings(database_url=database_url).database_url
    shown = redact(url)
    try:
        async_url(url)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    head = migrate.head_revision()
    deadline = time.monotonic() + wait
    said = ""
    while True:
        try:
            revision = _schema_step(url, check)
        except ValueError as exc:
            _fail(str(exc), EXIT_USAGE)
        except OSError as exc:
            problem, code = f"cannot reach the database {shown}: {exc}", EXIT_UNREACHABLE
        except Exception as exc:  # noqa: BLE001 - driver errors come in many classes; say what failed, not the password
            what = "reading the schema of" if check else "migration of"
            problem, code = f"{what} {shown} failed: {type(exc).__name__}: {exc}", EXIT_UNREACHABLE
        else:
            if not check or revision == head:
                typer.echo(f"{shown} is at schema revision {revision}")
                return
            problem = f"the database {shown} is at schema {revision or 'none'}, this server needs {head}: run `m2m-auth migrate`"
            code = EXIT_REFUSED
        left = deadline - time.monotonic()
        if left <= 0:
            _fail(problem, code)
        if problem != said:  # one line per new reason, not one per attempt
            typer.echo(f"m2m-auth: waiting up to {left:.0f} s more: {problem}", err=True)
            said = problem
        time.sleep(min(2.0, left))


@app.command("settings")
def settings_command() -> None:
    """Print the configuration reference (every M2M_AUTH_* variable) as Markdown."""
    from m2m_auth.server.settings import settings_reference

    typer.echo(settings_reference(), nl=False)


def _migrated_database(database_url: str | None) -> str:
    """The database URL from the option or the settings, checked: known scheme, schema up to date."""
    from m2m_auth.server.storage import migrate
    from m2m_auth.server.storage.sql.engine import async_url, redact

    url: str = _settings(database_url=database_url).database_url
    try:
        async_url(url)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    revision = _on_database(url, "reading the schema version", migrate.current_revision)
    if revision != migrate.head_revision():
        _fail(
            f"the database {redact(url)} is at schema {revision or 'none'}, this command needs "
            f"{migrate.head_revision()}: run `m2m-auth migrate` first",
            EXIT_USAGE,
        )
    return url


def _on_database(database_url: str, what: str, work: Any) -> Any:
    """Run `work(engine)` on the database; one line and exit 3 when it fails."""
    from m2m_auth.server.storage.sql.engine import create_engine, redact

    async def run() -> Any:
        engine = create_engine(database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - driver errors come in many classes; name it, show no statement
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0][:200]
        _fail(f"{what} on {redact(database_url)} failed: {type(cause).__name__}: {first_line}", EXIT_UNREACHABLE)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _columns(rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@app.command("purge")
def purge_command(
    database_url: DatabaseUrl = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Rows per transaction (env M2M_AUTH_PURGE_BATCH_SIZE).", show_default=False)
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Delete expired tokens, JWT deny-list entries, used assertions and retired client secrets, once.

    Running servers do this by themselves every M2M_AUTH_PURGE_INTERVAL seconds; this runs alongside
    them safely (rows another purge holds are skipped, never waited on).
    """
    from m2m_auth.server.storage.sql.purge import Purger

    size = _settings(purge_batch_size=batch_size).purge_batch_size
    url = _migrated_database(database_url)
    result = _on_database(url, "purge", lambda engine: Purger(engine, batch_size=size).purge())
    data = {"removed": result.removed, "total": result.total, "seconds": round(result.duration, 3)}
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    _print(data, False, [*result.removed.items(), ("total", f"{result.total} rows in {result.duration:.2f} s")])


@app.command("stats")
def stats_command(
    database_url: DatabaseUrl = None,
    minutes: Annotated[float, typer.Option(help="Window for tokens issued per client, in minutes.")] = 5.0,
    top: Annotated[int, typer.Option(help="How many clients to list.")] = 10,
    as_json: AsJson = False,
) -> None:
    """Live tokens, expired rows awaiting purge, table sizes, and the clients issuing the most tokens."""
    import time

    from m2m_auth.server.storage.sql.stats import storage_stats

    if minutes <= 0 or top < 1:
        _fail("--minutes must be positive and --top at least 1", EXIT_USAGE)
    url = _migrated_database(database_url)
    window = max(1, round(minutes * 60))
    data = _on_database(url, "stats", lambda engine: storage_stats(engine, int(time.time()), window=window, top=top))
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    _print(
        data,
        False,
        [
            ("live tokens", data["live_tokens"]),
            ("expired tokens", f"{data['expired_tokens']} (rows awaiting purge)"),
            ("database size", _size(data["database_bytes"])),
        ],
    )
    typer.echo("")
    _columns(
        [("TABLE", "ROWS", "EXPIRED", "SIZE")]
        + [
            (name, t["rows"], "-" if t["expired_rows"] is None else t["expired_rows"], _size(t["bytes"]))
            for name, t in data["tables"].items()
        ]
    )
    typer.echo("")
    clients = data["issued"]["clients"]
    span = f"{window // 60} min" if window % 60 == 0 else f"{window} s"
    typer.echo(f"tokens issued in the last {span} (still stored), by client:")
    if not clients:
        typer.echo("  none")
        return
    _columns(
        [("CLIENT_ID", "TOKENS", "PER MINUTE")] + [(c["client_id"], c["tokens"], c["per_minute"]) for c in clients]
    )


@admin_token_app.command("reset")
def admin_token_reset(database_url: DatabaseUrl = None) -> None:
    """Replace the generated admin token (the old one stops working) and print the new one once."""
    from m2m_auth.server import secrets
    from m2m_auth.server.admin.service import ADMIN_DIGEST_KEY
    from m2m_auth.server.storage.sql.store import SqlStorage

    settings = _settings(database_url=database_url)
    token = secrets.new_secret(secrets.ADMIN_TOKEN_PREFIX)

    async def run() -> None:
        storage = SqlStorage.from_url(settings.database_url)
        try:
            await storage.put_state(ADMIN_DIGEST_KEY, secrets.digest(token).hex())
        finally:
            await storage.close()

    try:
        asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - any failure: one line, exit 3
        _fail(f"could not store the new admin token: {type(exc).__name__}", EXIT_UNREACHABLE)
    if settings.admin_token is not None:
        typer.echo("warning: M2M_AUTH_ADMIN_TOKEN is set; servers use it instead of the stored token", err=True)
    typer.echo(token)
    typer.echo("Running servers pick the new token up when they restart.", err=True)


# --- HTTP commands -------------------------------------------------------------------------------


def _base_url(url: str | None) -> str:
    return (
        url or os.environ.get("M2M_AUTH_URL") or os.environ.get("M2M_AUTH_ISSUER") or "http://127.0.0.1:8000"
    ).rstrip("/")


def _call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return httpx.request(method, url, timeout=10.0, **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}", EXIT_UNREACHABLE)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            error, description = body.get("error", "error"), body.get("error_description", "")
        except (ValueError, AttributeError):
            error, description = f"HTTP {response.status_code}", response.text[:200]
        code = EXIT_UNREACHABLE if response.status_code >= 500 else EXIT_REFUSED
        _fail(f"{error}: {description}" if description else error, code)
    if not response.content:
        return None
    return response.json()


def _admin(method: str, url: str | None, path: str, admin_token: str | None, body: Any = None) -> Any:
    if not admin_token:
        _fail("an admin token is needed: --admin-token or M2M_AUTH_ADMIN_TOKEN", EXIT_USAGE)
    headers = {"Authorization": f"Bearer {admin_token}"}
    return _check(_call(method, f"{_base_url(url)}{path}", headers=headers, json=body))


def _client_auth(client_id: str | None, client_secret: str | None) -> httpx.BasicAuth:
    if not client_id or not client_secret:
        _fail("client credentials are needed: --client-id/--client-secret or M2M_AUTH_CLIENT_ID/SECRET", EXIT_USAGE)
    return httpx.BasicAuth(client_id, client_secret)  # httpx form-encodes nothing; our ids and secrets are URL-safe


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int):
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print(data: Any, as_json: bool, lines: list[tuple[str, Any]]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        typer.echo(f"{key.ljust(width)}  {value}")


def _client_lines(c: dict[str, Any]) -> list[tuple[str, Any]]:
    lines = [
        ("client_id", c["client_id"]),
        ("client_name", c["client_name"]),
        ("scope", c["scope"] or "-"),
        ("audience", ", ".join(c["audience"]) or "- (server default)"),
        ("auth method", c["token_endpoint_auth_method"]),
        ("token format", c["access_token_format"] or "server default"),
        ("token ttl", f"{c['access_token_ttl']} s" if c["access_token_ttl"] else "server default"),
        ("metadata", json.dumps(c["metadata"]) if c["metadata"] else "-"),
        ("disabled", "yes" if c["disabled"] else "no"),
        ("created", _when(c["client_id_issued_at"])),
    ]
    if "client_secret" in c:
        lines.append(("client_secret", f"{c['client_secret']}   (shown once: store it now)"))
    return lines


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option("--name", help="client_name")],
    scope: Annotated[str, typer.Option(help="Allowed scopes, space-separated.")] = "",
    audience: Annotated[list[str] | None, typer.Option(help="Allowed audience (repeat for several).")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="Choose the client_id.")] = None,
    ttl: Annotated[int | None, typer.Option("--ttl", help="access_token_ttl in seconds.")] = None,
    auth_method: Annotated[str | None, typer.Option(help="token_endpoint_auth_method.")] = None,
    token_format: Annotated[str | None, typer.Option("--format", help="access_token_format.")] = None,
    metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE claim (repeat for several).")] = None,
    url: Url = None,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Register a client; its secret is printed once."""
    body: dict[str, Any] = {"client_name": name, "scope": scope, "audience": audience or []}
    for key, value in (
        ("client_id", client_id),
        ("access_token_ttl", ttl),
        ("token_endpoint_auth_method", auth_method),
        ("access_token_format", token_format),
    ):
        if value is not None:
            body[key] = value
    if metadata:
        pairs = [m.partition("=") for m in metadata]
        if any(not sep or not k for k, sep, _ in pairs):
            _fail("--metadata takes KEY=VALUE", EXIT_USAGE)
        body["metadata"] = {k: v for k, _, v in pairs}
    created = _admin("POST", url, "/admin/clients", admin_token, body)
    _print(created, as_json, _client_lines(created))


@clients_app.command("list")
def clients_list(url: Url = None, admin_token: AdminToken = None, as_json: AsJson = False) -> None:
    """List registered clients."""
    data = _admin("GET", url, "/admin/clients", admin_token)
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = [("CLIENT_ID", "NAME", "SCOPE", "STATE")] + [
        (c["client_id"], c["client_name"], c["scope"] or "-", "disabled" if c["disabled"] else "enabled")
        for c in data["clients"]
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[3])


@clients_app.command("show")
def clients_show(client_id: str, url: Url = None, admin_token: AdminToken = None, as_json: AsJson = False) -> None:
    """Show one client."""
    data = _admin("GET", url, f"/admin/clients/{client_id}", admin_token)
    _print(data, as_json, _client_lines(data))


@clients_app.command("delete")
def clients_delete(client_id: str, url: Url = None, admin_token: AdminToken = None) -> None:
    """Delete a client and revoke its tokens."""
    _admin("DELETE", url, f"/admin/clients/{client_id}", admin_token)
    typer.echo(f"deleted {client_id}")


@clients_app.command("disable")
def clients_disable(client_id: str, url: Url = None, admin_token: AdminToken = None) -> None:
    """Disable a client: it gets no new tokens and its tokens are revoked."""
    _admin("PATCH", url, f"/admin/clients/{client_id}", admin_token, {"disabled": True})
    typer.echo(f"disabled {client_id}")


@clients_app.command("enable")
def clients_enable(client_id: str, url: Url = None, admin_token: AdminToken = None) -> None:
    """Enable a disabled client (its revoked tokens stay revoked)."""
    _admin("PATCH", url, f"/admin/clients/{client_id}", admin_token, {"disabled": False})
    typer.echo(f"enabled {client_id}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str,
    grace_period: Annotated[int | None, typer.Option(help="Seconds the old secret keeps working.")] = None,
    url: Url = None,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Issue a new secret; the old one works until the grace period ends."""
    body = {} if grace_period is None else {"grace_period": grace_period}
    data = _admin("POST", url, f"/admin/clients/{client_id}/secret", admin_token, body)
    _print(
        data,
        as_json,
        [
            ("client_id", data["client_id"]),
            ("client_secret", f"{data['client_secret']}   (shown once: store it now)"),
            ("previous secret expires", _when(data["previous_secret_expires_at"])),
        ],
    )


@app.command()
def token(
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    scope: Annotated[str | None, typer.Option(help="Scopes to ask for (default: all allowed).")] = None,
    audience: Annotated[str | None, typer.Option(help="Audience to ask for.")] = None,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Get an access token with client credentials and print it."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    if audience:
        form["audience"] = audience
    auth = _client_auth(client_id, client_secret)
    data = _check(_call("POST", f"{_base_url(url)}/oauth/token", data=form, auth=auth))
    typer.echo(json.dumps(data, indent=2) if as_json else data["access_token"])


@app.command()
def introspect(
    token: Annotated[str, typer.Argument(help="The token.")],
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Ask the server whether a token is active (RFC 7662). Exit 1 if it is not."""
    auth = _client_auth(client_id, client_secret)
    data = _check(_call("POST", f"{_base_url(url)}/oauth/introspect", data={"token": token}, auth=auth))
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    elif not data.get("active"):
        typer.echo("active  false")
    else:
        _print(data, False, [(k, data[k]) for k in sorted(data)])
    if not data.get("active"):
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def revoke(
    token: Annotated[str, typer.Argument(help="The token.")],
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    admin_token: AdminToken = None,
    url: Url = None,
) -> None:
    """Revoke a token: as its client (RFC 7009), or as admin when no client credentials are given."""
    if client_id and client_secret:
        auth = _client_auth(client_id, client_secret)
        _check(_call("POST", f"{_base_url(url)}/oauth/revoke", data={"token": token}, auth=auth))
        typer.echo("revoked (if the token was this client's)")
        return
    data = _admin("POST", url, "/admin/tokens/revoke", admin_token, {"token": token})
    typer.echo("revoked" if data["revoked"] else "nothing to revoke: unknown or already revoked token")


@app.command()
def explain(
    token: Annotated[str, typer.Argument(help="The token Service B rejects.")],
    scope: Annotated[str | None, typer.Option(help="Scope(s) the resource server requires.")] = None,
    audience: Annotated[str | None, typer.Option(help="Audience the resource server expects.")] = None,
    url: Url = None,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Say why a resource server would accept or reject a token. Exit 1 if it would be rejected."""
    body: dict[str, Any] = {"token": token}
    if scope:
        body["scope"] = scope
    if audience:
        body["audience"] = audience
    data = _admin("POST", url, "/admin/tokens/explain", admin_token, body)
    ok = data["active"] and not data["reasons"]
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        lines: list[tuple[str, Any]] = [("verdict", "ACCEPTED" if ok else "REJECTED")]
        lines.append(("format", data.get("token_format") or "unrecognised"))
        lines.append(("known to server", "yes" if data["known"] else "no"))
        if data["known"]:
            state = "disabled" if data["client_disabled"] else ("exists" if data["client_exists"] else "deleted")
            lines += [
                ("client", f"{data['client_id']} ({state})"),
                ("scope", data["scope"] or "-"),
                ("audience", ", ".join(data["audience"])),
                ("issued", _when(data["issued_at"])),
                ("expires", f"{_when(data['expires_at'])} (in {data['expires_in']} s)"),
                ("revoked", _when(data["revoked_at"]) if data["revoked_at"] else "no"),
            ]
        for reason in data["reasons"]:
            lines.append(("why", reason))
        _print(data, False, lines)
    if not ok:
        raise typer.Exit(EXIT_REFUSED)


@keys_app.command("list")
def keys_list(url: Url = None, admin_token: AdminToken = None, as_json: AsJson = False) -> None:
    """Every signing key: next (published, not signing yet), active, retired (still published), expired."""
    data = _admin("GET", url, "/admin/keys", admin_token)
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = [("KID", "ALG", "STATE", "PUBLISHED", "SIGNS FROM")] + [
        (k["kid"], k["alg"], k["state"], "yes" if k["published"] else "no", _when(k["activates_at"]))
        for k in data["keys"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[4])


@keys_app.command("rotate")
def keys_rotate(
    delay: Annotated[int, typer.Option(help="Seconds before the new key signs (0: at once, the emergency case).")] = 0,
    url: Url = None,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Create a new signing key; the old one stays in the JWKS until its last token expired."""
    data = _admin("POST", url, "/admin/keys/rotate", admin_token, {"delay": delay})
    _print(data, as_json, [("kid", data["kid"]), ("alg", data["alg"]), ("signs from", _when(data["activates_at"]))])


@keys_app.command("reseal")
def keys_reseal(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Seal every signing key with M2M_AUTH_KEY_ENCRYPTION_KEY, opening old ones with ..._PREVIOUS.

    Servers do this at start-up; run it once after changing the key-encryption key, before removing
    M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS. Safe alongside running servers and other runs of itself.
    Exit 1 if a key is still sealed with another key afterwards (a server with other keys rewrote it).
    """
    from m2m_auth.server.keys import KeyConfigError, KeySealer, ResealResult, reseal_keys
    from m2m_auth.server.storage.sql.engine import redact
    from m2m_auth.server.storage.sql.store import SqlStorage

    settings = _settings(database_url=database_url)
    url = _migrated_database(database_url)

    async def run() -> ResealResult:
        sealer = KeySealer.from_settings(settings)
        storage = SqlStorage.from_url(url)
        try:
            return await reseal_keys(storage, sealer)
        finally:
            await storage.close()

    try:
        result = asyncio.run(run())
    except KeyConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - driver errors come in many classes; name it, show no statement
        _fail(f"resealing the signing keys on {redact(url)} failed: {type(exc).__name__}", EXIT_UNREACHABLE)
    data = {"resealed": result.resealed, "keys": result.total, "stale": result.stale}
    _print(
        data,
        as_json,
        [
            ("resealed", ", ".join(result.resealed) or "none (nothing to do)"),
            ("signing keys", result.total),
            ("sealed with the current key", result.total - result.stale),
        ],
    )
    if result.stale:
        _fail(f"{result.stale} signing key(s) not sealed with the current key-encryption key: run again", EXIT_REFUSED)


@keys_app.command("generate-kek")
def keys_generate_kek() -> None:
    """Print a new key-encryption key for M2M_AUTH_KEY_ENCRYPTION_KEY (32 random bytes, base64url)."""
    from m2m_auth.server.keys import generate_kek

    typer.echo(generate_kek())

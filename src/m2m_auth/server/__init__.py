"""The authorization server (install `m2m-auth[server]`)."""

from m2m_auth.server.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # keep `import m2m_auth.server` free of Starlette
        from m2m_auth.server.asgi.app import create_app

        return create_app
    raise AttributeError(name)

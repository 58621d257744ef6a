"""A minimal Django project serving django-oauth-toolkit's token, introspection and revocation endpoints.

Started by bench/compare.py under gunicorn; configured by environment:
`DOT_DATABASE_URL` (postgresql://user@host:port/db, or sqlite:///path) and `DOT_SECRET_KEY`.
Production settings (DEBUG off), an API-only middleware stack (no sessions, no CSRF: the OAuth
endpoints are CSRF-exempt anyway), persistent database connections, Django's default password
hashers (PBKDF2, 1,000,000 rounds in Django 5.2), which DOT uses for client secrets.
"""

import os
from urllib.parse import urlsplit

DEBUG = False
SECRET_KEY = os.environ["DOT_SECRET_KEY"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

_url = urlsplit(os.environ["DOT_DATABASE_URL"])
if _url.scheme.startswith("postgres"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _url.path.lstrip("/"),
            "USER": _url.username or "",
            "PASSWORD": _url.password or "",
            "HOST": _url.hostname or "",
            "PORT": str(_url.port or ""),
            "CONN_MAX_AGE": None,  # persistent connections, as Django's docs advise under load
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _url.path}}

OAUTH2_PROVIDER = {
    "SCOPES": {"read": "Read access", "introspection": "Introspect tokens"},
    "DEFAULT_SCOPES": ["read"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": 600,  # m2m-auth's default lifetime
}

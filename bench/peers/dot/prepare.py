"""Create DOT's schema and two client-credentials applications; print their credentials as JSON.

One application keeps DOT's default (`hash_client_secret=True`: the secret is stored as a Django
password hash and every client authentication runs PBKDF2), the other turns hashing off (the
secret is stored as given and compared in constant time).
"""

import json
import os
import secrets
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0, interactive=False)

from oauth2_provider.models import get_application_model  # noqa: E402

Application = get_application_model()
out = {}
for name, hashed in (("hashed", True), ("plain", False)):
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name=f"bench-{name}",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=hashed,
    )
    out[name] = {"client_id": app.client_id, "client_secret": secret}
json.dump(out, sys.stdout)

"""DOT's endpoints under /o/ (token, introspect, revoke_token), and the stack's hello at /hello."""

from django.http import HttpResponse
from django.urls import include, path


def hello(request):  # the ceiling of this stack: Django under gunicorn, no database
    return HttpResponse(b'{"hello":"world"}', content_type="application/json")


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("hello", hello),
]

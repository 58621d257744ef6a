"""m2m-auth: OAuth 2 for service-to-service calls."""

__version__ = "0.1.0"

"""Authentication classes of the REST API (settings.REST_FRAMEWORK).

A module of its own: DRF imports these while it loads `rest_framework.views`,
so they must not import views themselves.
"""

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, refusing keys that cannot be a token
    (40 hexadecimal characters) before they reach the database: PostgreSQL
    cannot even compare a string holding NUL, which would be a 500."""

    def authenticate_credentials(self, key):
        if not (len(key) <= 40 and key.isascii() and key.isalnum()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)

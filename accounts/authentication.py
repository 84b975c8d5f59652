"""Authentication classes of the REST API (settings.REST_FRAMEWORK).

A module of its own: DRF imports these while it loads `rest_framework.views`,
so they must not import views themselves.
"""

import functools

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

# `Authorization: Token <key>` and `Authorization: Bearer <key>`: the same tokens
# (generated clients default to Bearer).
SCHEMES = (b"token", b"bearer")


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, taking `Token <key>` or `Bearer <key>`, and
    refusing keys that cannot be a token (40 hexadecimal characters) before
    they reach the database: PostgreSQL cannot even compare a string holding
    NUL, which would be a 500.

    Any other Authorization header (`Basic ...`, an unknown scheme), and a
    `?token=` (the streams' form), are 401: credentials the API does not read
    are never a silent anonymous request.
    Without the header the session (SessionAuthentication) or anonymity applies.

    The lookup is one SQL statement written once: it runs on every API
    request, and building it with the ORM (`select_related("user").get()`)
    was a tenth of a comment POST's CPU in the write benchmark."""

    def authenticate(self, request):
        if request.query_params.get("token"):
            # The streams' way to send a token; read here it would be ignored,
            # an anonymous request for credentials that were sent.
            raise exceptions.AuthenticationFailed(
                "The REST API takes the token in the Authorization header (Token <key> or Bearer <key>), not in ?token=."
            )
        auth = authentication.get_authorization_header(request).split()
        if not auth:
            return None
        if auth[0].lower() not in SCHEMES:
            raise exceptions.AuthenticationFailed(
                "Unsupported authorization scheme; send Authorization: Token <key> or Bearer <key>."
            )
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected Token <key> or Bearer <key>.")
        try:
            key = auth[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key is not a token.") from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key):
        if not could_be_token(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        found = list(get_user_model().objects.raw(_user_by_token_sql(), [key]))
        if not found:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user = found[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)


def could_be_token(key: str) -> bool:
    """Keys that cannot be a token never reach the database."""
    return len(key) <= 40 and key.isascii() and key.isalnum()


@functools.cache
def _user_by_token_sql() -> str:
    users, tokens = get_user_model()._meta, Token._meta
    user_column = tokens.get_field("user").column
    return (
        f"SELECT u.* FROM {users.db_table} u JOIN {tokens.db_table} t ON t.{user_column} = u.{users.pk.column}"
        f" WHERE t.{tokens.pk.column} = %s"
    )

"""Token authentication for mobile apps: obtain and revoke."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from comments.serializers import ErrorSerializer
from livecomment.lib.errors import ServiceError
from livecomment.lib.parsers import strict_body
from livecomment.lib.throttling import AnonIPThrottle, login_wait

# Longer than any username Django accepts (150); also bounds the hashing work.
CREDENTIAL_MAX = 1024


def _plausible(value: str) -> bool:
    """Could an account have this? No control characters: PostgreSQL cannot
    even compare a string holding NUL (a 500 if it reached the query)."""
    return len(value) <= CREDENTIAL_MAX and value.isprintable()


def _encodable(value: str) -> bool:
    """Password hashers encode to UTF-8; a lone surrogate cannot be."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField()


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(APIView):
    """POST: exchange username and password for a token. DELETE: revoke it."""

    throttle_classes = [AnonIPThrottle]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    @extend_schema(
        operation_id="auth_token_create",
        request=TokenRequestSerializer,
        auth=[],  # sign-in takes no credentials (security: [], livecomment.lib.schema)
        responses={
            200: TokenResponseSerializer,
            **{c: OpenApiResponse(ErrorSerializer) for c in (400, 401, 413, 415, 429)},
        },
    )
    def post(self, request):
        body = strict_body(request.data, TokenRequestSerializer, "The body (username and password)")
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise ServiceError("missing_credentials", "username and password are required strings.")
        if not _plausible(username) or len(password) > CREDENTIAL_MAX or not _encodable(password):
            raise ServiceError("invalid_credentials", "Wrong username or password.", 400)
        user = authenticate(request._request, username=username, password=password)
        wait = login_wait(request._request)
        if wait is not None:  # THROTTLE_LOGIN_RATE per IP + username, THROTTLE_LOGIN_IP_RATE per IP
            raise Throttled(wait)
        if user is None or not user.is_active:
            raise ServiceError("invalid_credentials", "Wrong username or password.", 400)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(
        operation_id="auth_token_destroy", request=None, responses={204: None, 401: OpenApiResponse(ErrorSerializer)}
    )
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=204)

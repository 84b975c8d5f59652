"""How the OpenAPI document describes token authentication (imported by AccountsConfig.ready).

The same token is accepted as `Authorization: Token <key>` and as
`Authorization: Bearer <key>`; the document lists both schemes, either one
(OR) signing a request in, so generated clients may use their default Bearer.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

_BOTH = (
    "An API token from POST /api/v1/auth/token/, sent as `Authorization: Token <key>` "
    "or `Authorization: Bearer <key>` (the same tokens). A wrong token, any other "
    "scheme, or a `?token=` (the streams' form, not read here) is 401 "
    "authentication_failed, never an anonymous request."
)


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TokenAuthentication"
    name = ["tokenAuth", "bearerAuth"]
    priority = 1

    def get_security_requirement(self, auto_schema):
        return [{"tokenAuth": []}, {"bearerAuth": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "Authorization", "description": _BOTH},
            {"type": "http", "scheme": "bearer", "description": _BOTH},
        ]

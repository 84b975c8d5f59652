from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-up, sign-in pages, API tokens and token authentication."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import schema  # noqa: F401 - registers the OpenAPI token schemes

from django.apps import AppConfig


class RegionsConfig(AppConfig):
    name = "regions"
    verbose_name = "Regions (relay and ingest)"
    default_auto_field = "django.db.models.BigAutoField"

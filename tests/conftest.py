import pytest
from django.conf import settings
from django.core.cache import cache

from livecomment.lib import redis_client

LAST = "test_asyncapi.py::test_it_received_only_events_the_document_describes"


def pytest_collection_modifyitems(session, config, items):
    """The check of every event the run's clients received runs after all the tests that received them."""
    last = [item for item in items if item.nodeid.endswith(LAST)]
    items[:] = [item for item in items if not item.nodeid.endswith(LAST)] + last


@pytest.fixture(autouse=True)
def clean_redis():
    """Every test starts with an empty Redis and default limits."""
    from comments import services

    redis_client.sync_client().flushdb()
    cache.clear()
    services.store._pending_undos.clear()
    services.store.FAIL_POINTS.clear()
    services.rules._moderators_cache.clear()
    services.rules._hosts_cache.clear()
    services.rules._terms_cache.clear()
    yield
    services.store._pending_undos.clear()
    services.store.FAIL_POINTS.clear()


@pytest.fixture
def redis():
    return redis_client.sync_client()


@pytest.fixture
def no_throttle(settings):
    settings.THROTTLE_POST_RATE = "100000/min"
    settings.THROTTLE_ANON_RATE = "100000/min"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Django's PBKDF2 costs ~0.3 s per user created or signed in; tests that
    # are not about hashing need none of it. Autouse: applies before the user
    # fixtures of tests/base.py.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _generous_throttles(settings):
    # Tests of throttling lower these again on purpose.
    settings.THROTTLE_POST_RATE = "100000/min"
    settings.THROTTLE_ANON_RATE = "100000/min"
    settings.THROTTLE_REPORT_RATE = "100000/min"


from tests.separate_redis import persistent_separate_redis, separate_redis  # noqa: E402  (fixtures)
from tests.servers import gateways  # noqa: E402  (fixture)


@pytest.fixture
def fault_figures(request):
    """Record a fault test's figures; `make faults` collects them for docs/RELIABILITY.md."""
    import json
    import os

    def record(scenario: str, figures: dict) -> None:
        path = os.environ.get("FAULTS_REPORT")
        print(f"\n{scenario}: {figures}")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps({"test": request.node.nodeid, "scenario": scenario, **figures}) + "\n")

    return record

"""The benchmark instrument end to end, tiny: 20 SSE connections to one real
Daphne gateway (`manage.py serve`, its own SQLite + embedded Redis), 20
comments posted through the REST API. Asserts nothing about speed -- only that
every acknowledged comment reached every connection exactly once (what
`make bench-smoke` checks too). See bench/ and docs/BENCHMARKS.md.
"""

import pytest

from bench.__main__ import smoke

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]


def test_bench_smoke_no_loss_no_duplicates():
    r = smoke(connections=20, comments=20, rate=20.0, log=lambda *a: None)
    assert r["connections"] == 20 and r["acked"] == 20, r
    assert r["expected"] == 400
    assert r["lost"] == 0, r
    assert r["duplicated"] == 0, r

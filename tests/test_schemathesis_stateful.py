"""Schemathesis' stateful phase against a real gateway: it links operations by
the ids their answers carry (a posted comment's id into its report, moderate
and delete; a video's into its bans, held queue and reports) and runs random
sequences of calls as staff. Every response must pass every check (no 5xx,
documented status codes, the documented schema), as in
tests/test_schemathesis.py, which covers single calls in-process.

Run through the schemathesis CLI: Hypothesis' own state machine runner sees
the server's state move under a replay and reports flaky data generation.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token

from comments import services
from tests.base import make_user
from tests.servers import gateways
from videos.models import Video

pytestmark = pytest.mark.processes

EXAMPLES = os.environ.get("SCHEMATHESIS_STATEFUL_EXAMPLES", "100")
STAFF_TOKEN = "6" * 40
CONFIG = """
[generation]
# Undeclared query parameters are ignored, as in tests/test_schemathesis.py.
allow-extra-parameters = false

[parameters]
# A long-poll would sleep up to 30 s a call.
"query.wait" = 1
"""


def test_it_holds_up_in_sequences_of_calls(gateways, tmp_path):
    staff = make_user("staff", staff=True)
    Token.objects.create(user=staff, key=STAFF_TOKEN)
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    services.post_comment(video, make_user("alice"), "something to act on")
    make_user("target")
    gateway = gateways.start(server="uvicorn")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        os.path.join(os.path.dirname(sys.executable), "schemathesis"),
        "--config-file",
        str(config),
        "run",
        gateway.url("/api/schema/?format=json"),
        "--phases",
        "stateful",
        "--checks",
        "all",
        # Writes refuse some schema-valid bodies for reasons a schema cannot
        # say (a wrong password, a comment in the wrong state): documented 4xx.
        # A DELETEd comment is removed, not gone: its author and moderators
        # still read it with status removed (comments_destroy says so).
        "--exclude-checks",
        "positive_data_acceptance,use_after_free",
        "--exclude-path",
        "/api/v1/videos/{video_id}/stream",
        "-H",
        f"Authorization: Token {STAFF_TOKEN}",
        "--max-examples",
        EXAMPLES,
        "--seed",
        "1",
        "--no-color",
        "--request-timeout",
        "20",
        "--generation-database",
        ":memory:",
    ]
    # In tmp_path: the CLI keeps a cache directory in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Stateful" in output, output[-3000:]

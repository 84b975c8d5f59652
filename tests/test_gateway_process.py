"""The test harness itself: gateway processes start against the test DB and Redis."""

import httpx

from comments.models import Comment
from tests.base import alice, client_for, video


def test_it_serves_the_api_from_a_separate_process(gateways, video, alice):
    gateway = gateways.start()
    token = client_for(alice)._credentials["HTTP_AUTHORIZATION"]
    r = httpx.post(
        gateway.url(f"/api/v1/videos/{video.pk}/comments/"),
        json={"text": "from a real server"},
        headers={"Authorization": token},
    )
    assert r.status_code == 201, r.text
    assert Comment.objects.get().text == "from a real server"

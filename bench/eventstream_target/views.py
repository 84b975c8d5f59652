"""The publish endpoint: the same request shape as livecomment's comment API
(POST {"text": ...} -> 201 comment JSON), implemented with send_event()."""

import itertools
import json
import threading
from datetime import UTC, datetime

from django.http import HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_eventstream import send_event

_ids = itertools.count(1)
_lock = threading.Lock()


@csrf_exempt
def publish(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    try:
        text = str(json.loads(request.body)["text"])
    except (ValueError, KeyError, TypeError):
        return HttpResponseBadRequest('body must be {"text": ...}')
    with _lock:
        comment_id = next(_ids)
    data = {
        "id": comment_id,
        "video": 1,
        "author": {"id": 1, "name": "bench"},
        "text": text,
        "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    send_event("bench", "comment", data)
    return JsonResponse(data, status=201)


def healthz(request):
    return JsonResponse({"status": "ok"})

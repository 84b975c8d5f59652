"""`{% live_chat video %}`: the live chat panel in any template of a site that
installs the apps (`{% load livecomment %}`).

It renders the panel of the video page -- the same template, configuration,
stylesheet (static/css/chat.css, every rule under .chat) and script
(static/js/chat.js) -- so what a viewer sees and can do is the same. One panel
per page (its elements have fixed ids). It needs the request in the template's
context (Django's `request` context processor, as the project's settings have).
"""

from __future__ import annotations

from django import template
from django.middleware.csrf import get_token
from django.template.loader import render_to_string

from videos.models import Video
from videos.views import chat_context

register = template.Library()


@register.simple_tag(takes_context=True)
def live_chat(context, video: Video) -> str:
    request = context.get("request")
    if request is None:
        raise template.TemplateSyntaxError(
            "{% live_chat %} needs the request in the context: add "
            "django.template.context_processors.request to the template settings"
        )
    if not isinstance(video, Video):
        raise template.TemplateSyntaxError(f"{{% live_chat %}} takes a Video, got {type(video).__name__}")
    get_token(request)  # the CSRF cookie the panel's posts send back, as the video page's ensure_csrf_cookie
    return render_to_string("videos/live_chat.html", chat_context(request, video), request=request)

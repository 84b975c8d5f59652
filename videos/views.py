from django.shortcuts import get_object_or_404, render

from videos.models import Video


def index(request):
    videos = Video.objects.exclude(state=Video.State.ENDED).live_first()[:200]
    return render(request, "videos/index.html", {"videos": videos})


def video_page(request, video_id: int):
    video = get_object_or_404(Video, pk=video_id)
    return render(request, "videos/video.html", {"video": video})

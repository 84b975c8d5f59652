"""django-eventstream 5.3.4 under Daphne with its Redis transport: the
benchmark's comparison target. A separate Django project with its own
settings; never imported by livecomment. Started by bench/targets.py."""

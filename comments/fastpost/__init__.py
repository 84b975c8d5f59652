"""Token clients' comment POSTs, served in front of Django: the ASGI endpoint
(`endpoint`), the per-video group commit (`batcher`) and its one-statement
lookup of tokens, bans and the video (`lookup`)."""

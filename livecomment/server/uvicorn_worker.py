"""One uvicorn gateway process on a listening socket inherited from `manage.py serve`.

    python -m livecomment.server.uvicorn_worker <fd>

Not `uvicorn --fd`: that wraps the descriptor as a unix socket whatever it
is, so asyncio never sets TCP_NODELAY on the accepted TCP connections and
Nagle's algorithm holds small writes back ~40 ms (measured by bench/).
`socket.socket(fileno=fd)` asks the kernel for the real family.
"""

import socket
import sys

import uvicorn


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = uvicorn.Config(
        "livecomment.asgi:application",
        loop="uvloop",
        http="httptools",
        proxy_headers=False,  # the app applies NUM_PROXIES itself (livecomment/lib/limits.py)
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

"""A minimal HTTP/1.1 keep-alive client (asyncio streams) for the publisher and
the write benchmark, plus a tiny blocking GET for readiness checks.

Loopback only: callers pass 127.0.0.1 (the targets are started on it).
"""

from __future__ import annotations

import asyncio
import http.client
import json


class HTTPError(Exception):
    pass


class Conn:
    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _ensure(self) -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None, timeout: float = 10.0
    ) -> tuple[int, bytes]:
        """Send one request, return (status, body). Raises on I/O error or timeout."""
        try:
            return await asyncio.wait_for(self._request(method, path, body, headers or {}), timeout)
        except BaseException:
            self.close()  # unknown state: never reuse it
            raise

    async def _request(self, method, path, body, headers) -> tuple[int, bytes]:
        await self._ensure()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HTTPError(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        length = None
        chunked = False
        close = False
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                close = True
        if chunked:
            out = []
            for _ in range(100000):  # bounded
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                out.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(out)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, data


def get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Blocking GET (readiness checks)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_json(host: str, port: int, path: str, obj, headers: dict | None = None, timeout: float = 10.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(
            "POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json", **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()

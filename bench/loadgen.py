"""A small HTTP/1.1 load generator on asyncio raw sockets (stdlib only).

Requests are pre-built bytes. A connection is kept alive while the server allows it; gunicorn's sync workers
answer `Connection: close`, so against them every request pays a new TCP connect, as it does behind nginx.
Latency is measured from just before the request is written (connect included) to the last body byte.
The generator measures its own CPU time (`time.process_time`) so a run can show it was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import summary_ms


def post_form(host: str, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Bitrix24 Webhook Engine\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode() + body


def get(host: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: keep-alive\r\n\r\n".encode()


@dataclass
class Sample:
    key: Any
    start: float  # time.time() just before sending (wall clock, comparable with the portal's call times)
    latency: float  # seconds
    status: int  # 0 = transport error
    body: bytes = b""


@dataclass
class RunStats:
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # generator CPU seconds (user+sys of this process during the run)
    connects: int = 0

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]

    def errors(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)

    def summary(self) -> dict[str, Any]:
        n = len(self.samples)
        return {
            "requests": n,
            "errors": self.errors(),
            "error_statuses": sorted({s.status for s in self.samples if s.status != 200}),
            "rps": round(n / self.wall, 1) if self.wall else None,
            "wall_s": round(self.wall, 3),
            "latency": summary_ms([s.latency for s in self.samples if s.status == 200]),
            "generator_cpu_s": round(self.cpu, 3),
            "generator_cpu_share_of_one_core": round(self.cpu / self.wall, 3) if self.wall else None,
            "connects": self.connects,
        }


class _Conn:
    def __init__(self, host: str, port: int, stats: RunStats) -> None:
        self.host, self.port, self.stats = host, port, stats
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes, keep_body: bool = False) -> tuple[int, bytes]:
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.stats.connects += 1
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if fresh or attempt:  # a kept-alive connection the server dropped: retry once on a new one
                    raise
                continue
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            body = await self.reader.readexactly(length) if length else b""
            if close:
                await self.close()
            return status, body if keep_body else b""
        raise ConnectionError("unreachable")


async def _closed_loop(
    host: str,
    port: int,
    requests: Iterator[tuple[Any, bytes]],
    concurrency: int,
    stats: RunStats,
    stop: asyncio.Event | None,
    keep_body: bool,
) -> None:
    async def client() -> None:
        conn = _Conn(host, port, stats)
        try:
            while stop is None or not stop.is_set():
                try:
                    key, raw = next(requests)
                except StopIteration:
                    return
                t_wall = time.time()
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw, keep_body)
                except (OSError, asyncio.IncompleteReadError):
                    status, body = 0, b""
                    await conn.close()
                stats.samples.append(Sample(key, t_wall, time.perf_counter() - t0, status, body))
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


def closed_loop(
    host: str,
    port: int,
    requests: Iterator[tuple[Any, bytes]],
    concurrency: int,
    keep_body: bool = False,
) -> RunStats:
    """`concurrency` clients, each sending its next request as soon as the previous one is answered."""
    stats = RunStats()
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(_closed_loop(host, port, requests, concurrency, stats, None, keep_body))
    stats.wall = time.perf_counter() - t0
    stats.cpu = time.process_time() - cpu0
    return stats


async def _open_loop(host: str, port: int, requests: list[tuple[Any, bytes]], at: list[float], stats: RunStats) -> None:
    async def one(key: Any, raw: bytes, when: float) -> None:
        delay = when - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = _Conn(host, port, stats)
        t_wall, t0 = time.time(), time.perf_counter()
        try:
            status, _ = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError):
            status = 0
        stats.samples.append(Sample(key, t_wall, time.perf_counter() - t0, status))
        await conn.close()

    base = time.perf_counter() + 0.05
    await asyncio.gather(*(one(k, r, base + t) for (k, r), t in zip(requests, at, strict=True)))


async def _open_loop_with_background(
    host: str,
    port: int,
    requests: list[tuple[Any, bytes]],
    at: list[float],
    stats: RunStats,
    background: tuple[Iterator[tuple[Any, bytes]], int, RunStats] | None,
) -> None:
    if background is None:
        await _open_loop(host, port, requests, at, stats)
        return
    stop = asyncio.Event()
    bg_iter, bg_conc, bg_stats = background
    bg = asyncio.create_task(_closed_loop(host, port, bg_iter, bg_conc, bg_stats, stop, False))
    await asyncio.sleep(1.0)  # the load is running before the first timed request
    await _open_loop(host, port, requests, at, stats)
    stop.set()
    await bg


def poisson_schedule(n: int, rate: float, seed: int = 7) -> list[float]:
    rnd = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rnd.expovariate(rate)
    return out


def open_loop(
    host: str,
    port: int,
    requests: list[tuple[Any, bytes]],
    at: list[float],
    background: tuple[Iterator[tuple[Any, bytes]], int] | None = None,
) -> tuple[RunStats, RunStats | None]:
    """Send requests[i] at offset at[i] (seconds), each on its own connection, optionally while a closed-loop
    background load of (iterator, concurrency) runs; returns (timed requests, background) stats."""
    stats = RunStats()
    bg_stats = RunStats() if background else None
    bg = (background[0], background[1], bg_stats) if background and bg_stats is not None else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(_open_loop_with_background(host, port, requests, at, stats, bg))
    stats.wall = time.perf_counter() - t0
    stats.cpu = time.process_time() - cpu0
    if bg_stats is not None:
        bg_stats.wall, bg_stats.cpu = stats.wall, stats.cpu
    return stats, bg_stats


# ---- server-side CPU -----------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (gunicorn master + workers)."""
    return _proc_cpu(pid) + sum(_proc_cpu(c) for c in _children(pid))


class CpuMeter:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = 0.0

    def __enter__(self) -> CpuMeter:
        self.start = tree_cpu(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = tree_cpu(self.pid) - self.start


def cycle(items: list[Any]) -> Callable[[], Any]:
    i = -1

    def nxt() -> Any:
        nonlocal i
        i = (i + 1) % len(items)
        return items[i]

    return nxt

"""The extended emulator's watches, as a client on the wire sees them: every event once, in
order, as it happens (also one emitted while the watch is still writing the one before); 410
Gone for a resume from compacted history; watches the server ends; outages; and a shutdown that
does not wait for the watches still open.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.kube.emulator import ExtendedEmulator, RunningCluster, in_loop

CONFIGMAPS = "/api/v1/namespaces/team/configmaps"
#: Objects of 900 kB (a request body may have 1 MB), 14 MB in all: far more than the loopback
#: sockets buffer while a client does not read (a few MB), so a watch that has these to write
#: is still writing when the later ones are created.
LARGE, COUNT = 900 * 1024, 16


def configmap(name: str, size: int = 0) -> dict[str, Any]:
    meta = {"name": name}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"b": "x" * size}}


@pytest.fixture
def running() -> Iterator[RunningCluster]:
    with RunningCluster(ExtendedEmulator(history_limit=2)) as running:
        yield running


@pytest.fixture
def http(running: RunningCluster) -> Iterator[httpx.Client]:
    # The read timeout bounds a watch that never delivers; it is no timing assertion.
    with httpx.Client(base_url=running.url, timeout=10) as client:
        yield client


def read_events(chunks: Iterator[bytes], until: int | None = None) -> list[dict[str, Any]]:
    """The watch events in a stream, until ``until`` of them came or the stream ended."""
    out: list[dict[str, Any]] = []
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        out += [json.loads(line) for line in lines if line]
        if until is not None and len(out) >= until:
            break
    return out


def named(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


def resource_version(http: httpx.Client) -> int:
    """The list's resourceVersion, after a first write (0 would mean "list, then watch")."""
    if not http.get(CONFIGMAPS).json()["items"]:
        http.post(CONFIGMAPS, json=configmap("first"))
    return int(http.get(CONFIGMAPS).json()["metadata"]["resourceVersion"])


def watch_query(since: int | None = None, timeout: int | None = None) -> str:
    query = CONFIGMAPS + "?watch=true"
    query += f"&resourceVersion={since}" if since is not None else ""
    return query + (f"&timeoutSeconds={timeout}" if timeout is not None else "")


def test_events_emitted_while_a_watch_writes_are_delivered_at_once(http: httpx.Client) -> None:
    # The server ends the watch after 5 s, so an event it skips or holds back never comes.
    with http.stream("GET", watch_query(resource_version(http), timeout=5)) as watch:
        chunks = watch.iter_raw()
        http.post(CONFIGMAPS, json=configmap("large-0", LARGE))
        first = next(chunks)  # the watch is writing; this client reads no more for now
        for i in range(1, COUNT):
            http.post(CONFIGMAPS, json=configmap(f"large-{i}", LARGE))
        http.post(CONFIGMAPS, json=configmap("small"))
        events = read_events(itertools.chain([first], chunks), until=COUNT + 1)
    expected = [f"large-{i}" for i in range(COUNT)] + ["small"]
    assert named(events) == [("ADDED", name) for name in expected]


def test_the_server_stops_at_once_with_a_watch_open(running: RunningCluster) -> None:
    with httpx.Client(base_url=running.url, timeout=10) as http:
        http.post(CONFIGMAPS, json=configmap("a"))
        with http.stream("GET", watch_query()) as watch:  # no timeout: it never ends by itself
            chunks = watch.iter_raw()
            assert named(read_events(chunks, until=1)) == [("ADDED", "a")]
            running.stop()  # raises if the emulator's thread is still there 10 s later
            assert read_events(chunks) == []  # and the watch ended cleanly


def test_a_resume_gets_what_came_after_and_410_gone_once_compacted(
    running: RunningCluster, http: httpx.Client
) -> None:
    since = resource_version(http)
    http.post(CONFIGMAPS, json=configmap("a"))
    http.post(CONFIGMAPS, json=configmap("b"))
    with http.stream("GET", watch_query(since, timeout=5)) as watch:
        assert named(read_events(watch.iter_raw(), until=2)) == [("ADDED", "a"), ("ADDED", "b")]
    running.emulator.compact()
    with http.stream("GET", watch_query(since, timeout=1)) as watch:
        (gone,) = read_events(watch.iter_raw())
    assert gone["type"] == "ERROR"
    assert (gone["object"]["code"], gone["object"]["reason"]) == (410, "Expired")
    with http.stream("GET", watch_query(resource_version(http), timeout=5)) as watch:
        http.post(CONFIGMAPS, json=configmap("c"))  # a resume from now on is served
        assert named(read_events(watch.iter_raw(), until=1)) == [("ADDED", "c")]


def test_a_resume_from_before_the_kept_events_is_410_gone() -> None:
    with (
        RunningCluster(ExtendedEmulator(events_kept=2)) as running,
        httpx.Client(base_url=running.url, timeout=10) as http,
    ):
        since = resource_version(http)
        for name in ("a", "b"):
            http.post(CONFIGMAPS, json=configmap(name))
        with http.stream("GET", watch_query(since, timeout=5)) as watch:
            assert len(read_events(watch.iter_raw(), until=2)) == 2  # both kept
        http.post(CONFIGMAPS, json=configmap("c"))  # "a" is dropped
        with http.stream("GET", watch_query(since, timeout=1)) as watch:
            (gone,) = read_events(watch.iter_raw())
        assert gone["object"]["code"] == 410


def test_end_watches_ends_every_open_watch_cleanly(
    running: RunningCluster, http: httpx.Client
) -> None:
    http.post(CONFIGMAPS, json=configmap("a"))
    with http.stream("GET", watch_query()) as watch:
        chunks = watch.iter_raw()
        assert named(read_events(chunks, until=1)) == [("ADDED", "a")]
        in_loop(running, running.emulator.end_watches)
        assert read_events(chunks) == []


def test_an_outage_refuses_everyone_or_one_token(
    running: RunningCluster, http: httpx.Client
) -> None:
    emulator = running.emulator

    def code(token: str) -> int:
        return http.get(CONFIGMAPS, headers={"Authorization": f"Bearer {token}"}).status_code

    emulator.unavailable = True
    assert (code("a"), code("b")) == (503, 503)
    assert http.get("/version").status_code == 503  # a server that is down answers nothing
    emulator.unavailable = False
    emulator.unavailable_to.add("a")
    assert (code("a"), code("b")) == (503, 200)
    emulator.unavailable_to.clear()
    assert code("a") == 200

"""The RL serving API (docs/rl.md): the admin listener and its token, pause and resume through
the admission queue, the fleet transaction (commit, roll back, a worker joining), the committed
version in every discovery store, version-aware routing, and ``weight_version`` on every
response.

Real servers throughout: the frontend and its admin listener on loopback ports, mocker workers
on the request plane, aiohttp and the ``openai`` client as callers.  The SIGKILL case runs the
workers as subprocesses (test_rl_processes.py).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from drivetrain.runtime.discovery import open_store
from drivetrain.runtime.discovery.kubernetes import KubernetesStore
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.frontend.server import FrontendConfig, RunningFrontend
from drivetrain.runtime.records import CommittedWeights, weights_key
from tests.paths import shared
from tests.runtime.kube_support import FRONTEND_ROLE, WORKER_ROLE, KubeDiscovery
from tests.runtime.serving_support import Stack, serving_stack

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = [
    ("GET", "/v1/rl/workers?model=tiny"),
    ("POST", "/v1/rl/pause"),
    ("POST", "/v1/rl/resume"),
    ("POST", "/v1/rl/update_weights"),
]


def mocker(load_s: float = 0.0, fail: tuple[str, ...] = (), speedup: float = 20.0) -> MockerEngine:
    return MockerEngine(
        model_path=str(shared("models", "tiny")),
        speedup_ratio=speedup,
        weight_load_s=load_s,
        fail_versions=fail,
    )


def chat(max_tokens: int = 4, **extra: Any) -> dict[str, Any]:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        **extra,
    }


async def admin(
    session: aiohttp.ClientSession, stack: Stack, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    url = f"{stack.frontend.admin_url}{path}"
    if body is None:
        async with session.get(url, headers=AUTH) as resp:
            return resp.status, await resp.json()
    async with session.post(url, json=body, headers=AUTH) as resp:
        return resp.status, await resp.json()


async def ask(session: aiohttp.ClientSession, stack: Stack, **extra: Any) -> tuple[int, str, str]:
    """(status, header version, body version) of one unary chat completion."""
    async with session.post(stack.url + "/v1/chat/completions", json=chat(**extra)) as resp:
        body = await resp.json()
        return (
            resp.status,
            resp.headers.get("x-drivetrain-weight-version", ""),
            body.get("weight_version", ""),
        )


def update(version: str, **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "version": version, "source": {"path": "/"}, **extra}


# ---- the listener and its token -----------------------------------------------------------


async def test_without_a_token_the_admin_port_is_closed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = await open_store("memory://rl-closed")
    running = RunningFrontend(
        FrontendConfig(host="127.0.0.1", port=0, admin_port=port, admin_token=None), store=store
    )
    await running.start()
    try:
        assert running.admin_url is None
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        await running.stop()
        await store.close()


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
async def test_every_admin_route_answers_401_without_the_right_token(
    method: str, path: str, header: str | None
) -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        headers = {"Authorization": header} if header is not None else {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{stack.frontend.admin_url}{path}", json=update("9"), headers=headers
            ) as resp,
        ):
            assert resp.status == 401
            body = await resp.json()
        assert body["error"]["code"] == "invalid_api_key"
        assert body["error"]["message"] == "missing or invalid admin token"  # nothing more
        # Nothing happened: no pause, no update.
        state = stack.frontend.table.state("tiny")
        assert state is not None and not state.gate.held and state.committed is None
        assert stack.workers[0].weights.version == "0"


async def test_bad_admin_bodies_are_400_with_the_field() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            status, body = await admin(
                session, stack, "/v1/rl/pause", {"model": "tiny", "mode": "x"}
            )
            assert status == 400 and body["error"]["param"] == "mode"
            status, body = await admin(
                session,
                stack,
                "/v1/rl/update_weights",
                {"model": "tiny", "version": "1", "source": {}},
            )
            assert status == 400 and body["error"]["param"] == "source"
            status, body = await admin(
                session, stack, "/v1/rl/update_weights", update("1", model="nope")
            )
            assert status == 404 and body["error"]["code"] == "model_not_found"


# ---- pause and resume ----------------------------------------------------------------------


async def test_pause_keep_holds_new_requests_in_the_admission_queue_until_resume() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            status, body = await admin(session, stack, "/v1/rl/pause", {"model": "tiny"})
            assert status == 200 and body["paused"] is True
            assert body["instances"][0]["state"] == "paused"
            held = [asyncio.create_task(ask(session, stack)) for _ in range(3)]
            state = stack.frontend.table.state("tiny")
            assert state is not None
            await stack.wait(lambda: state.gate.waiting == 3)
            await asyncio.sleep(0.2)
            assert not any(t.done() for t in held)  # held, not refused
            status, body = await admin(session, stack, "/v1/rl/resume", {"model": "tiny"})
            assert status == 200 and body["instances"][0]["state"] == "serving"
            answers = await asyncio.gather(*held)
        assert [a[0] for a in answers] == [200, 200, 200]


async def test_pause_abort_ends_running_requests_with_finish_reason_abort() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker(speedup=0.5))  # slow enough to be running
        client = stack.client()
        stream = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=200, stream=True
        )
        reasons: list[str | None] = []

        async def read() -> None:
            async for chunk in stream:
                if chunk.choices:
                    reasons.append(chunk.choices[0].finish_reason)

        reader = asyncio.create_task(read())
        await stack.wait(lambda: stack.workers[0].server.in_flight == 1)
        async with aiohttp.ClientSession() as session:
            status, _ = await admin(
                session, stack, "/v1/rl/pause", {"model": "tiny", "mode": "abort"}
            )
            assert status == 200
            await asyncio.wait_for(reader, 10)
            assert reasons[-1] == "abort"
            await admin(session, stack, "/v1/rl/resume", {"model": "tiny"})
            assert (await ask(session, stack))[0] == 200


# ---- the fleet transaction -----------------------------------------------------------------


async def test_an_update_commits_on_every_worker_and_every_response_names_its_version(
    store_url: str,
) -> None:
    async with serving_stack(admin_token=TOKEN, store_url=store_url) as stack:
        for _ in range(3):
            await stack.add_worker(mocker(load_s=0.02))
        async with aiohttp.ClientSession() as session:
            assert await ask(session, stack) == (200, "0", "0")
            status, body = await admin(session, stack, "/v1/rl/update_weights", update("v1"))
            assert status == 200, body
            assert body["status"] == "committed" and body["sequence"] == 1
            assert {i["weight_version"] for i in body["instances"]} == {"v1"}
            for _ in range(6):
                assert await ask(session, stack) == (200, "v1", "v1")
            async with session.post(
                stack.url + "/v1/chat/completions", json=chat(stream=True)
            ) as resp:
                assert resp.headers["x-drivetrain-weight-version"] == "v1"
                assert '"weight_version":"v1"' in await resp.text()
        # The committed version is in discovery, not only in this frontend.
        items, _ = await stack.store.get_prefix(weights_key("global", "tiny"))
        record = CommittedWeights.decode(items[0].value)
        assert (record.version, record.sequence, record.source) == ("v1", 1, {"path": "/"})
        # A frontend started afterwards (a restart, or another replica) routes by it.
        other = RunningFrontend(
            FrontendConfig(host="127.0.0.1", port=0, discovery=store_url), store=stack.store
        )
        await other.start()
        try:
            # Known once it started: before its first request is routed.
            state = other.table.state("tiny")
            assert state is not None and (state.committed, state.committed_sequence) == ("v1", 1)
        finally:
            await other.stop()


async def test_one_worker_failing_its_load_leaves_every_worker_on_the_old_version() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        for i in range(4):
            await stack.add_worker(mocker(load_s=0.02, fail=("v2",) if i == 2 else ()))
        async with aiohttp.ClientSession() as session:
            assert (await admin(session, stack, "/v1/rl/update_weights", update("v1")))[0] == 200
            status, body = await admin(session, stack, "/v1/rl/update_weights", update("v2"))
            assert status == 409, body
            assert body["status"] == "rolled_back"
            assert body["failed"] == [stack.workers[2].instance_id]
            assert body["out_of_routing"] == []
            assert body["error"]["code"] == "update_failed"
            assert "simulated load failure" in body["error"]["message"]
            assert {i["weight_version"] for i in body["instances"]} == {"v1"}
            for _ in range(8):
                assert await ask(session, stack) == (200, "v1", "v1")
            _, listing = await admin(session, stack, "/v1/rl/workers?model=tiny")
        assert listing["committed_version"] == "v1" and listing["paused"] is False
        assert {i["state"] for i in listing["instances"]} == {"serving"}
        items, _ = await stack.store.get_prefix(weights_key("global", "tiny"))
        assert CommittedWeights.decode(items[0].value).version == "v1"


async def test_a_worker_that_cannot_roll_back_stays_out_of_routing() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        stuck = mocker(load_s=0.02)
        for engine in (mocker(load_s=0.02, fail=("v1",)), stuck, mocker(load_s=0.02)):
            await stack.add_worker(engine)

        async def cannot() -> bool:
            return False

        stuck.restore_weights = cannot  # type: ignore[method-assign]
        async with aiohttp.ClientSession() as session:
            status, body = await admin(session, stack, "/v1/rl/update_weights", update("v1"))
            assert status == 409 and body["status"] == "rolled_back_partially"
            assert body["out_of_routing"] == [stack.workers[1].instance_id]
            for _ in range(8):  # never the worker holding v1
                assert await ask(session, stack) == (200, "0", "0")
            # The next update fixes it.
            stack.workers[0].engine.weights.fail_versions.clear()  # type: ignore[attr-defined]
            status, body = await admin(session, stack, "/v1/rl/update_weights", update("v2"))
            assert status == 200, body
            assert {i["weight_version"] for i in body["instances"]} == {"v2"}


async def test_a_worker_joining_mid_update_is_brought_to_the_committed_version() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        for _ in range(3):
            await stack.add_worker(mocker(load_s=0.5))
        async with aiohttp.ClientSession() as session:
            updating = asyncio.create_task(
                admin(session, stack, "/v1/rl/update_weights", update("v1"))
            )
            await asyncio.sleep(0.2)
            late = await stack.add_worker(mocker(load_s=0.3))  # registers on version 0
            assert late.weights.version == "0"
            status, body = await updating
            assert status == 200 and body["joined"] == [late.instance_id]
            # Never routed on its old version: every answer from now on is v1.
            answers = await asyncio.gather(*(ask(session, stack) for _ in range(12)))
            assert set(answers) == {(200, "v1", "v1")}
            await stack.wait(lambda: late.weights.version == "v1")
            _, listing = await admin(session, stack, "/v1/rl/workers?model=tiny")
        assert {i["weight_version"] for i in listing["instances"]} == {"v1"}
        assert len(listing["instances"]) == 4


async def test_a_worker_started_after_a_commit_loads_it_before_it_registers() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            assert (await admin(session, stack, "/v1/rl/update_weights", update("v7")))[0] == 200
        late = await stack.add_worker(mocker())
        assert late.weights.version == "v7" and late.weights.sequence == 1


async def test_nccl_sources_are_specified_but_answer_not_implemented() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        body = update("v1", source={"nccl": {"master_address": "10.0.0.1", "master_port": 29500}})
        async with aiohttp.ClientSession() as session:
            status, answer = await admin(session, stack, "/v1/rl/update_weights", body)
            assert status == 409 and "NCCL" in answer["error"]["message"]
            assert await ask(session, stack) == (200, "0", "0")


# ---- token-in/token-out ----------------------------------------------------------------------


async def test_generate_returns_token_ids_logprobs_and_the_version() -> None:
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            await admin(session, stack, "/v1/rl/update_weights", update("v3"))
            request = {
                "model": "tiny",
                "token_ids": [5, 6, 7],
                "sampling": {"max_tokens": 5, "logprobs": 1},
            }
            async with session.post(stack.url + "/v1/generate", json=request) as resp:
                assert resp.status == 200
                assert resp.headers["x-drivetrain-weight-version"] == "v3"
                body = await resp.json()
            assert len(body["token_ids"]) == 5 and all(
                isinstance(t, int) for t in body["token_ids"]
            )
            assert len(body["logprobs"]) == 5 and all(lp <= 0 for lp in body["logprobs"])
            assert body["finish_reason"] == "length" and body["weight_version"] == "v3"
            assert body["usage"] == {
                "prompt_tokens": 3,
                "completion_tokens": 5,
                "total_tokens": 8,
                "prompt_tokens_details": {"cached_tokens": 0},
            }

            async with session.post(
                stack.url + "/v1/generate",
                json={**request, "stream": True, "sampling": {"max_tokens": 6}},
            ) as resp:
                events = [
                    line[6:]
                    for line in (await resp.text()).splitlines()
                    if line.startswith("data: ")
                ]
            assert events[-1] == "[DONE]"
            import json

            chunks = [json.loads(e) for e in events[:-1]]
            assert sum(len(c["token_ids"]) for c in chunks[:-1]) == 6
            assert all(c["logprobs"] is None for c in chunks[:-1])
            assert chunks[-1]["weight_version"] == "v3" and chunks[-1]["finish_reason"] == "length"

            async with session.post(
                stack.url + "/v1/generate", json={"model": "tiny", "token_ids": [1, -2]}
            ) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["param"] == "token_ids.1"


async def test_a_request_held_by_a_paused_worker_does_not_block_an_update() -> None:
    """A request another frontend routed just before the pause waits in the worker; the
    update must not wait for it as for a running one, and it then runs on the new version."""
    async with serving_stack(admin_token=TOKEN) as stack:
        worker = await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            await worker.weights.pause("keep", 0.0)  # as if paused by another frontend
            held = asyncio.create_task(ask(session, stack))
            await stack.wait(lambda: worker.weights.waiting == 1)
            status, body = await admin(
                session, stack, "/v1/rl/update_weights", update("v1", timeout=5)
            )
            assert status == 200, body
            assert await held == (200, "v1", "v1")


async def test_a_worker_whose_coordinator_vanished_resolves_itself_from_discovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prepared, then no commit nor abort: after its hold the worker goes back, unless
    discovery holds the commit of that version (then it serves it)."""
    from drivetrain.runtime import weightcontrol
    from drivetrain.runtime.engines.base import WeightSource

    monkeypatch.setattr(weightcontrol, "HOLD_GRACE_S", 0.2)
    async with serving_stack(admin_token=TOKEN) as stack:
        worker = await stack.add_worker(mocker())
        control = worker.weights
        answer = await control.prepare("t1", "v1", WeightSource(path="/"), "keep", 0.1)
        assert answer["ok"] and control.paused and control.pending == "v1"
        await stack.wait(lambda: not control.paused)
        assert (control.version, control.state, control.pending) == ("0", "serving", None)

        answer = await control.prepare("t2", "v2", WeightSource(path="/"), "keep", 0.1)
        record = CommittedWeights(model="tiny", namespace="global", version="v2", sequence=4)
        # Written by the vanished coordinator before it could send the commit (the worker's
        # watch of the record, or its expiry, whichever comes first, commits it):
        await stack.store.put(record.key, record.encode())
        await stack.wait(lambda: control.version == "v2")
        assert (control.sequence, control.paused) == (4, False)


async def test_a_worker_that_may_not_read_discovery_is_told_to_catch_up_by_the_frontend() -> None:
    """On kubernetes:// a worker holds write-only rights: it starts on its own version, the
    frontend never routes to it on that version, and tells it to load the committed one."""
    async with serving_stack(admin_token=TOKEN) as stack:
        await stack.add_worker(mocker())
        async with aiohttp.ClientSession() as session:
            assert (await admin(session, stack, "/v1/rl/update_weights", update("v5")))[0] == 200
            stack.store.workers_read = False  # as KubernetesStore
            late = await stack.add_worker(mocker())
            assert late.weights.version == "0"
            answers = await asyncio.gather(*(ask(session, stack) for _ in range(8)))
            assert set(answers) == {(200, "v5", "v5")}
            await stack.wait(lambda: late.weights.version == "v5")


async def test_on_kubernetes_the_committed_version_outlives_the_pod_of_the_frontend_that_wrote_it(
    kube_store_url: str, kube_discovery: KubeDiscovery
) -> None:
    """The frontend that runs an update writes the committed version from its pod; when that
    pod goes (evicted, rolled over), the frontend that replaces it must still route by it."""
    kube = kube_discovery
    async with serving_stack(admin_token=TOKEN, store_url=kube_store_url) as stack:
        await stack.add_worker(mocker(load_s=0.02))
        async with aiohttp.ClientSession() as session:
            status, body = await admin(session, stack, "/v1/rl/update_weights", update("v1"))
            assert status == 200, body
    kube.delete_pod("test-pod")  # where that frontend (and, in this test, its worker) ran
    uid = kube.pod("frontend-2")
    config = kube.restricted("frontend-2", FRONTEND_ROLE, WORKER_ROLE)
    store = await KubernetesStore.connect(
        kube.namespace, environ={"KUBECONFIG": str(config), **kube.pod_env("frontend-2", uid)}
    )
    successor = RunningFrontend(
        FrontendConfig(host="127.0.0.1", port=0, discovery=kube_store_url), store=store
    )
    await successor.start()
    try:
        state = successor.table.state("tiny")
        assert state is not None and (state.committed, state.committed_sequence) == ("v1", 1)
    finally:
        await successor.stop()
        await store.close()

"""Disaggregated serving end to end: prefill and decode mockers registered with their roles, the
frontend's hand-off from one to the other, a prefill instance failing before the hand-off, and
conditional disaggregation."""

from __future__ import annotations

import httpx

from drivetrain.runtime.discovery.registration import Registration
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.records import InstanceRecord, ModelCard
from tests.runtime.serving_support import TINY, Stack, StalledServer, serving_stack
from tests.runtime.test_kv_routing import conversation


class CountingMocker(MockerEngine):
    """A mocker that counts what it was asked to do (which side of the hand-off ran)."""

    def __init__(self, mode: str, seed: int = 0) -> None:
        super().__init__(str(TINY), speedup_ratio=1000, seed=seed, disaggregation_mode=mode)
        self.prefills = 0
        self.transferred = 0
        self.local = 0

    async def prefill(self, op, body, prompt_ids):  # type: ignore[no-untyped-def]
        self.prefills += 1
        return await super().prefill(op, body, prompt_ids)

    def generate_into(self, op, body, prompt_ids, push, transferred=False):  # type: ignore[no-untyped-def]
        if transferred:
            self.transferred += 1
        else:
            self.local += 1
        return super().generate_into(op, body, prompt_ids, push, transferred)


async def metrics(stack: Stack) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(stack.url + "/metrics")).text


async def test_roles_are_registered() -> None:
    async with serving_stack() as stack:
        worker = await stack.add_worker(CountingMocker("prefill"))
        instance, card = worker.records()
        assert instance.role == "prefill"
        assert card.kv_block_size == 64
        await stack.wait(lambda: stack.frontend.table.models["tiny"].targets[0].role == "prefill")


async def test_prefill_then_decode() -> None:
    async with serving_stack(router="kv") as stack:
        prefill = CountingMocker("prefill")
        decode = CountingMocker("decode", seed=1)
        await stack.add_worker(prefill)
        await stack.add_worker(decode)
        await stack.wait(lambda: stack.frontend.table.models["tiny"].disaggregated)
        client = stack.client()
        reply = await client.chat.completions.create(
            model="tiny",
            messages=conversation(1, 0),
            max_tokens=5,  # type: ignore[arg-type]
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 5
        stream = await client.chat.completions.create(
            model="tiny",
            messages=conversation(1, 1),  # type: ignore[arg-type]
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
        assert (prefill.prefills, decode.transferred, decode.local) == (2, 2, 0)
        # The prefill instance cached the prompts; the second found the first's system prompt.
        assert prefill.kv_cache is not None and prefill.kv_cache.hits > 0
        text = await metrics(stack)
        assert (
            'drivetrain_frontend_disaggregated_requests_total{model="tiny",path="prefill_decode"} 2'
            in text
        )


async def test_a_prefill_instance_failing_before_the_hand_off_is_retried() -> None:
    async with serving_stack(router="kv") as stack:
        stalled = StalledServer()
        address = await stalled.start()
        # A prefill instance that accepts the request and dies before answering.
        record = InstanceRecord(
            instance_id="dying-prefill",
            namespace="global",
            component="prefill",
            address=address,
            transport="tcp",
            model_names=["tiny"],
            role="prefill",
        )
        card = ModelCard(
            name="tiny",
            namespace="global",
            model_types=["chat", "completions"],
            instance_id="dying-prefill",
            kv_block_size=64,
            tokenizer=str(TINY.resolve()),
        )
        registration = Registration(stack.store, 5, (record, card))
        await registration.start()
        stack.registrations.append(registration)
        await stack.wait_routable("tiny", "dying-prefill")
        decode = CountingMocker("decode")
        await stack.add_worker(decode)
        client = stack.client()
        # The only prefill instance is the stalled one: the request waits on it...
        pending = client.chat.completions.create(
            model="tiny",
            messages=conversation(3, 0),
            max_tokens=3,  # type: ignore[arg-type]
        )
        import asyncio

        task = asyncio.ensure_future(pending)
        await stack.wait(lambda: stalled.requests > 0)
        # ...a healthy prefill instance comes, and the stalled one dies before answering.
        healthy = CountingMocker("prefill", seed=2)
        await stack.add_worker(healthy)
        await stalled.stop()
        reply = await task
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        assert healthy.prefills == 1 and decode.transferred == 1
        assert 'drivetrain_frontend_retries_total{model="tiny"} 1' in await metrics(stack)


async def test_conditional_disaggregation_skips_prefill_for_cached_prompts() -> None:
    async with serving_stack(router="kv", disagg_threshold=200) as stack:
        prefill = CountingMocker("prefill")
        decode = CountingMocker("decode", seed=1)
        await stack.add_worker(prefill)
        await stack.add_worker(decode)
        await stack.wait(lambda: stack.frontend.table.models["tiny"].disaggregated)
        kv = stack.frontend.kv
        assert kv is not None
        client = stack.client()
        # A short prompt (under the threshold) decodes where it is prefilled.
        await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert (prefill.prefills, decode.local) == (0, 1)
        # A long one is prefilled on the prefill instance; the decode instance caches it too.
        long = conversation(4, 2)
        await client.chat.completions.create(model="tiny", messages=long, max_tokens=2)  # type: ignore[arg-type]
        assert (prefill.prefills, decode.transferred) == (1, 1)
        decoder = stack.workers[1].address
        await stack.wait(lambda: len(kv.index.blocks(decoder)) > 0)
        # The same conversation again: its uncached part is short now, so no prefill instance.
        await client.chat.completions.create(model="tiny", messages=long, max_tokens=2)  # type: ignore[arg-type]
        assert (prefill.prefills, decode.local) == (1, 2)
        text = await metrics(stack)
        assert 'path="decode_only_cached"} 2' in text
        assert 'path="prefill_decode"} 1' in text


async def test_without_a_prefill_instance_decode_prefills_itself() -> None:
    async with serving_stack() as stack:
        decode = CountingMocker("decode")
        await stack.add_worker(decode)
        reply = await stack.client().chat.completions.create(
            model="tiny",
            messages=conversation(1, 0),
            max_tokens=2,  # type: ignore[arg-type]
        )
        assert reply.usage is not None and decode.local == 1
        assert 'path="decode_only_no_prefill"} 1' in await metrics(stack)

"""The transformers engine on the tiny random Llama model: a real forward pass on the CPU.

Greedy output is compared with ``transformers``' own ``generate`` (the reference for the forward
pass, positions and the KV cache); batching, seeds, stops, limits, the queue bound, cancellation
and weight updates are checked on the engine itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivetrain.runtime.engines.base import Chunk, EngineError, Finish

pytestmark = pytest.mark.torch

PROMPTS = ["hello there", "the quick brown fox jumps", "a", "Everything is fine, said the dog."]


@pytest.fixture
async def engine(tiny_llama: Path) -> AsyncIterator[Any]:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine

    built = TransformersEngine(str(tiny_llama), threads=1)
    await built.start()
    try:
        yield built
    finally:
        await built.close()


async def run(
    engine: Any, body: dict[str, Any], op: str = "completions"
) -> tuple[list[Chunk], Finish]:
    items = [item async for item in engine.generate(op, body)]
    *chunks, finish = items
    assert isinstance(finish, Finish)
    assert all(isinstance(c, Chunk) for c in chunks)
    return chunks, finish


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


def reference_greedy(model_path: Path, prompt: str, new_tokens: int) -> tuple[list[int], str]:
    """transformers' own greedy generation: token ids and text (no early stop at EOS)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_path), local_files_only=True).eval()
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
        )
    new = out[0, ids.shape[1] :].tolist()
    return new, tok.decode(new, skip_special_tokens=True)


async def test_greedy_output_is_transformers_own_generate(engine: Any, tiny_llama: Path) -> None:
    _, expected = reference_greedy(tiny_llama, PROMPTS[1], 24)
    chunks, finish = await run(engine, {"prompt": PROMPTS[1], "max_tokens": 24, "temperature": 0})
    assert text_of(chunks) == expected
    assert (finish.finish_reason, finish.completion_tokens) == ("length", 24)
    assert finish.prompt_tokens == len(engine._tokenizer.encode(PROMPTS[1]))


async def test_the_kv_cache_is_reused_one_token_per_step(engine: Any) -> None:
    lm = engine.scheduler.lm
    seen: list[tuple[int, int]] = []
    original = lm.forward

    def spy(ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        seen.append((ids.shape[1], cache.get_seq_length()))
        return original(ids, mask, positions, cache)

    lm.forward = spy
    prompt_len = len(engine._tokenizer.encode(PROMPTS[0]))
    await run(engine, {"prompt": PROMPTS[0], "max_tokens": 10, "temperature": 0})
    # One prefill of the whole prompt, then one new token per step over a growing cache.
    assert seen[0] == (prompt_len, 0)
    assert seen[1:] == [(1, prompt_len + i) for i in range(9)]


async def test_the_forward_pass_runs_off_the_event_loop_thread(engine: Any) -> None:
    lm = engine.scheduler.lm
    threads: set[int] = set()
    original = lm.forward

    def spy(*args: Any) -> Any:
        threads.add(threading.get_ident())
        return original(*args)

    lm.forward = spy
    await run(engine, {"prompt": "x", "max_tokens": 3})
    assert threads and threading.get_ident() not in threads


async def test_requests_that_arrive_together_decode_in_one_batch_with_the_same_text(
    engine: Any,
) -> None:
    bodies = [{"prompt": p, "max_tokens": 16, "temperature": 0} for p in PROMPTS]
    alone = [text_of((await run(engine, b))[0]) for b in bodies]
    steps_before = engine.scheduler.steps
    largest = 0

    async def watch() -> None:
        nonlocal largest
        while True:
            largest = max(largest, engine.scheduler.largest_batch)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    together = await asyncio.gather(*(run(engine, b) for b in bodies))
    watcher.cancel()
    assert [text_of(c) for c, _ in together] == alone  # left padding changes nothing
    assert largest > 1
    # Far fewer forward passes than one per token per request (4 x 16).
    assert engine.scheduler.steps - steps_before < 40


async def test_a_request_joining_a_running_batch_gets_the_text_it_gets_alone(engine: Any) -> None:
    long_body = {"prompt": PROMPTS[3], "max_tokens": 60, "temperature": 0}
    short_body = {"prompt": PROMPTS[0], "max_tokens": 12, "temperature": 0}
    long_alone = text_of((await run(engine, long_body))[0])
    short_alone = text_of((await run(engine, short_body))[0])

    first = asyncio.create_task(run(engine, long_body))
    while engine.scheduler.active == 0:  # the long one is decoding
        await asyncio.sleep(0.001)
    second = await run(engine, short_body)
    assert text_of(second[0]) == short_alone
    assert text_of((await first)[0]) == long_alone


async def test_the_same_seed_gives_the_same_text_and_another_seed_another(engine: Any) -> None:
    body = {"prompt": PROMPTS[0], "max_tokens": 24, "temperature": 1.0}
    a = text_of((await run(engine, {**body, "seed": 7}))[0])
    b = text_of((await run(engine, {**body, "seed": 7}))[0])
    c = text_of((await run(engine, {**body, "seed": 8}))[0])
    assert a == b
    assert a != c
    unseeded = {text_of((await run(engine, body))[0]) for _ in range(3)}
    assert len(unseeded) > 1


async def test_a_seeded_request_is_reproducible_inside_a_batch(engine: Any) -> None:
    body = {"prompt": PROMPTS[2], "max_tokens": 20, "seed": 11}
    alone = text_of((await run(engine, body))[0])
    others = [{"prompt": p, "max_tokens": 20} for p in PROMPTS[:2]]
    results = await asyncio.gather(run(engine, body), *(run(engine, o) for o in others))
    assert text_of(results[0][0]) == alone


async def test_a_tiny_top_p_keeps_only_the_most_likely_token(engine: Any) -> None:
    greedy = text_of((await run(engine, {"prompt": "a", "max_tokens": 16, "temperature": 0}))[0])
    body = {"prompt": "a", "max_tokens": 16, "temperature": 1.5, "top_p": 1e-6}
    assert text_of((await run(engine, {**body, "seed": 1}))[0]) == greedy
    assert text_of((await run(engine, {**body, "seed": 2}))[0]) == greedy


async def test_stop_strings_cut_the_text_and_finish_with_stop(engine: Any) -> None:
    body: dict[str, Any] = {"prompt": PROMPTS[0], "max_tokens": 40, "seed": 5}
    full = text_of((await run(engine, body))[0])
    stop = full[10:13]
    assert stop.strip(), full
    chunks, finish = await run(engine, {**body, "stop": ["never-there", stop]})
    assert text_of(chunks) == full[: full.index(stop)]
    assert finish.finish_reason == "stop"
    assert finish.completion_tokens < 40


async def test_streaming_is_token_by_token(engine: Any) -> None:
    chunks, finish = await run(engine, {"prompt": "hello", "max_tokens": 30, "temperature": 0})
    assert len(chunks) > 10
    assert sum(c.tokens for c in chunks) <= finish.completion_tokens == 30


async def test_chat_uses_the_tokenizers_chat_template(engine: Any) -> None:
    messages = [{"role": "user", "content": "hi"}]
    _, finish = await run(engine, {"messages": messages, "max_tokens": 1}, op="chat")
    expected = engine._tokenizer.encode("user: hi\nassistant:", add_special_tokens=False)
    assert finish.prompt_tokens == len(expected)


def short_context_model(tiny_llama: Path, tmp_path: Path, context: int) -> Path:
    folder = tmp_path / "short"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = context
    (folder / "config.json").write_text(json.dumps(config))
    return folder


async def test_the_context_length_is_registered_and_enforced(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine

    engine = TransformersEngine(str(short_context_model(tiny_llama, tmp_path, 24)), threads=1)
    assert engine.info().context_length == 24
    await engine.start()
    try:
        prompt_len = len(engine._tokenizer.encode(PROMPTS[3]))
        _, finish = await run(engine, {"prompt": PROMPTS[3], "temperature": 0})
        assert finish.completion_tokens == 24 - prompt_len
        assert finish.finish_reason == "length"
        with pytest.raises(EngineError) as err:
            await run(engine, {"prompt": "word " * 30})
        assert (err.value.status, err.value.code, err.value.param) == (
            400,
            "context_length_exceeded",
            "prompt",
        )
        assert err.value.message.startswith("This model's maximum context length is 24 tokens.")
        with pytest.raises(EngineError) as err:  # the prompt fits, max_tokens does not
            await run(engine, {"prompt": PROMPTS[3], "max_tokens": 25 - prompt_len})
        assert f"({prompt_len} in the prompt, {25 - prompt_len} in the completion)" in (
            err.value.message
        )
    finally:
        await engine.close()


async def test_the_queue_is_bounded(tiny_llama: Path) -> None:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine

    engine = TransformersEngine(str(tiny_llama), threads=1, max_batch=1, max_queue=1)
    await engine.start()
    try:
        body = {"prompt": "x", "max_tokens": 200, "temperature": 0}
        results = await asyncio.gather(
            *(run(engine, body) for _ in range(4)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, EngineError)]
        assert errors and all(e.status == 503 and "--max-queue" in e.message for e in errors)
        assert any(not isinstance(r, BaseException) for r in results)
    finally:
        await engine.close()


async def test_a_cancelled_request_leaves_the_batch(engine: Any) -> None:
    stream = engine.generate("completions", {"prompt": "x", "max_tokens": 4000})
    first = await anext(stream)
    assert isinstance(first, Chunk)
    await stream.aclose()  # what the worker does when the client goes away
    async with asyncio.timeout(10):
        while engine.scheduler.active:
            await asyncio.sleep(0.01)


async def test_weights_are_updated_in_place_and_a_bad_file_changes_nothing(
    engine: Any, tiny_llama: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from drivetrain.runtime.engines.hf.weights import WeightsError

    body = {"prompt": PROMPTS[1], "max_tokens": 16, "temperature": 0}
    before = text_of((await run(engine, body))[0])

    torch.manual_seed(123)
    other = AutoModelForCausalLM.from_config(engine.model.config)
    other_dir = tmp_path / "other"
    other.save_pretrained(other_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama / name, other_dir / name)
    _, expected = reference_greedy(other_dir, PROMPTS[1], 16)
    assert expected != before

    bad = tmp_path / "bad.safetensors"
    save_file({"model.norm.weight": torch.ones(3)}, str(bad))
    with pytest.raises(WeightsError, match=r"model\.norm\.weight: shape \[3\]"):
        await engine.update_weights(bad)
    assert text_of((await run(engine, body))[0]) == before

    count = await engine.update_weights(other_dir / "model.safetensors")
    assert count == len(other.state_dict())
    assert text_of((await run(engine, body))[0]) == expected


async def test_a_folder_without_weights_fails_to_start_with_one_line() -> None:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine
    from tests.paths import shared

    engine = TransformersEngine(str(shared("models", "tiny")))  # config and tokenizer only
    with pytest.raises(ValueError) as err:
        await engine.start()
    message = str(err.value)
    assert message.startswith("--model-path: ") and "model.safetensors" in message
    assert "\n" not in message


def test_bad_options_are_one_line_errors(tiny_llama: Path) -> None:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine

    with pytest.raises(FileNotFoundError, match="--model-path"):
        TransformersEngine("/nonexistent")
    with pytest.raises(ValueError, match="--device"):
        TransformersEngine(str(tiny_llama), device="tpu")
    with pytest.raises(ValueError, match="--model-types"):
        TransformersEngine(str(tiny_llama), model_types=("embeddings",))
    with pytest.raises(ValueError, match="--max-batch"):
        TransformersEngine(str(tiny_llama), max_batch=0)


async def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(engine: Any) -> None:
    lm = engine.scheduler.lm
    original = lm.forward
    calls = 0

    def broken_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("out of memory (simulated)")
        return original(*args)

    lm.forward = broken_once
    # Greedy on a prompt known to run 24 tokens without EOS: a sampled EOS from the random-weight
    # model would end the request before the third forward call.
    body = {"prompt": PROMPTS[1], "temperature": 0}
    with pytest.raises(EngineError) as err:
        await run(engine, {**body, "max_tokens": 10})
    assert err.value.status == 500 and "out of memory (simulated)" in err.value.message
    _, finish = await run(engine, {**body, "max_tokens": 5})
    assert finish.completion_tokens == 5


async def test_closing_the_engine_fails_running_requests_instead_of_hanging(
    tiny_llama: Path,
) -> None:
    from drivetrain.runtime.engines.hf.engine import TransformersEngine

    engine = TransformersEngine(str(tiny_llama), threads=1)
    await engine.start()
    stream = engine.generate("completions", {"prompt": "x", "max_tokens": 4000})
    assert isinstance(await anext(stream), Chunk)
    await engine.close()
    with pytest.raises(EngineError) as err:
        async with asyncio.timeout(10):
            async for _ in stream:
                pass
    assert err.value.status == 503


async def test_the_rl_api_loads_keeps_or_restores_and_a_bad_file_is_a_clean_failure(
    engine: Any, tiny_llama: Path, tmp_path: Path
) -> None:
    """``load_weights``/``restore_weights``/``keep_weights`` (docs/rl.md): the fleet's rollback
    brings the old weights back; a file that does not fit fails and changes nothing."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from drivetrain.runtime.engines.base import EngineError, UpdatesWeights, WeightSource

    assert isinstance(engine, UpdatesWeights)
    body = {"prompt": PROMPTS[1], "max_tokens": 16, "temperature": 0}
    before = text_of((await run(engine, body))[0])
    torch.manual_seed(7)
    other = AutoModelForCausalLM.from_config(engine.model.config)
    other.save_pretrained(tmp_path / "v2")
    bad = tmp_path / "bad.safetensors"
    save_file({"model.norm.weight": torch.ones(3)}, str(bad))

    with pytest.raises(EngineError) as err:
        await engine.load_weights("bad", WeightSource(path=str(bad)))
    assert err.value.status == 400 and "shape [3]" in err.value.message
    assert text_of((await run(engine, body))[0]) == before

    await engine.load_weights("v2", WeightSource(path=str(tmp_path / "v2")))  # a folder
    after = text_of((await run(engine, body))[0])
    assert after != before
    assert await engine.restore_weights() is True  # the fleet rolled back
    assert text_of((await run(engine, body))[0]) == before

    await engine.load_weights("v2", WeightSource(path=str(tmp_path / "v2")))
    engine.keep_weights()  # the fleet committed
    assert await engine.restore_weights() is True  # nothing kept: nothing changes
    assert text_of((await run(engine, body))[0]) == after

    with pytest.raises(EngineError) as err:
        await engine.load_weights("v3", WeightSource(nccl={"master_address": "x"}))
    assert err.value.status == 501

"""A worker registers its instance and model card under a lease and revokes them on stop."""

from __future__ import annotations

import uuid

from drivetrain.runtime.discovery import open_store
from drivetrain.runtime.engines.echo import EchoEngine
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.records import InstanceRecord, ModelCard
from drivetrain.runtime.worker import RunningWorker, WorkerConfig
from tests.paths import shared


async def test_worker_writes_instance_and_model_card_under_its_namespace() -> None:
    store = await open_store(f"memory://{uuid.uuid4().hex}")
    engine = MockerEngine(model_path=str(shared("models", "tiny")), speedup_ratio=1e6)
    worker = RunningWorker(
        WorkerConfig(model_name="tiny", namespace="team-a", component="decode"), engine, store=store
    )
    await worker.start()
    try:
        items, _ = await store.get_prefix("drivetrain/v1/")
        by_key = {kv.key: kv.value for kv in items}
        instance = InstanceRecord.decode(
            by_key[f"drivetrain/v1/instances/team-a/decode/{worker.instance_id}"]
        )
        card = ModelCard.decode(by_key[f"drivetrain/v1/models/team-a/tiny/{worker.instance_id}"])
        assert instance.address == worker.address
        assert instance.transport == "tcp"
        assert card.model_types == ["chat", "completions"]
        assert card.context_length is not None
    finally:
        await worker.stop()
    assert (await store.get_prefix("drivetrain/v1/"))[0] == []


async def test_model_types_of_the_card_come_from_the_engine() -> None:
    store = await open_store(f"memory://{uuid.uuid4().hex}")
    worker = RunningWorker(
        WorkerConfig(model_name="e"), EchoEngine(model_types=("embeddings",)), store=store
    )
    _, card = worker.records()
    assert card.model_types == ["embeddings"]
    assert card.namespace == "global"

"""Which engine a command starts: Dynamo's launchers and the engines' own entry points."""

from __future__ import annotations

import pytest

from drivetrain.render.engines import EngineChoiceError, detect_engine, resolve_engine


@pytest.mark.parametrize(
    ("command", "args", "engine"),
    [
        (["python3", "-m", "dynamo.vllm"], ["--model", "m"], "vllm"),
        (["python3"], ["-u", "-m", "dynamo.sglang"], "sglang"),
        (["/usr/bin/python3.11"], ["-m", "dynamo.trtllm.worker"], "trtllm"),
        (["python3", "-m", "mycompany.vllm"], [], "vllm"),
        (["vllm"], ["serve", "Qwen/Qwen3-0.6B"], "vllm"),
        (["/opt/venv/bin/vllm"], ["serve", "m"], "vllm"),
        (["python3", "-m", "vllm.entrypoints.openai.api_server"], [], "vllm"),
        (["python", "-m", "sglang.launch_server"], ["--model-path", "m"], "sglang"),
        (["trtllm-serve"], ["m", "--tp_size", "8"], "trtllm"),
        (["python3", "-m", "tensorrt_llm.commands.serve"], [], "trtllm"),
        (["sh", "-c"], ["cd /w && exec vllm serve m"], "vllm"),
        (["/bin/bash", "-lc"], ["source env.sh; python3 -m dynamo.sglang --x"], "sglang"),
        ([], ["echo start && python -m dynamo.vllm.worker | tee /tmp/log"], "vllm"),
    ],
)
def test_engine_is_detected(command: list[str], args: list[str], engine: str) -> None:
    assert detect_engine(command, args) == engine


@pytest.mark.parametrize(
    ("command", "args"),
    [
        (["python3", "-m", "dynamo.frontend"], []),
        (["python3", "-m", "dynamo.planner"], ["--backend", "vllm"]),
        (["sh", "-c"], ["echo python -m dynamo.vllm_tools"]),
        (["java"], ["-jar", "vllm.jar"]),
        (["sh", "-c"], ["echo vllm served"]),
        ([], []),
    ],
)
def test_commands_that_start_no_engine(command: list[str], args: list[str]) -> None:
    assert detect_engine(command, args) is None


def test_a_pipe_ends_the_launcher_so_a_later_token_is_not_its_module() -> None:
    # Dynamo's regex stops at | & ;: "-m" after a pipe belongs to another command.
    assert detect_engine(["sh", "-c"], ["python3 -V | grep -m dynamo.vllm"]) is None


def test_two_engines_in_one_command_are_an_error_naming_both() -> None:
    with pytest.raises(EngineChoiceError, match=r"more than one engine \(vllm, sglang\)"):
        detect_engine(["sh", "-c"], ["python -m dynamo.vllm & python -m dynamo.sglang"])


def test_explicit_engine_applies_when_none_is_detected() -> None:
    assert resolve_engine(["/opt/run.sh"], [], explicit="trtllm", is_worker=True) == "trtllm"


def test_detected_engine_must_match_the_explicit_one() -> None:
    with pytest.raises(EngineChoiceError, match='detected "vllm" from command but explicitly'):
        resolve_engine(["vllm"], ["serve", "m"], explicit="sglang", is_worker=True)


def test_services_that_are_not_workers_run_no_engine() -> None:
    assert resolve_engine(["vllm"], ["serve", "m"], explicit="vllm", is_worker=False) is None

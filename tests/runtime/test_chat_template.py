"""Chat templates: the tokenizer's Jinja template, rendered as transformers renders it.

``ChatTemplate`` (runtime/engines/text.py) serves the engines that have only a tokenizer (the
mocker); the transformers engine calls ``apply_chat_template`` itself.  The comparison tests
render real-world template shapes both ways and require the same text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drivetrain.runtime.engines.base import EngineError
from drivetrain.runtime.engines.mocker import MockerEngine
from drivetrain.runtime.engines.text import ChatTemplate, HFTokenizer, chat_prompt
from tests.paths import shared
from tests.tiny_llama import need_transformers

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) and message['role'] != 'system' %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
# Whitespace control (trim_blocks/lstrip_blocks), tojson without HTML escaping, loop controls
# and the {% generation %} tag of training templates.
TOOLS_AND_BLOCKS = """{% for m in messages %}
    {% if m['role'] == 'tool' %}{% continue %}{% endif %}
    <{{ m['role'] }}>{{ m | tojson }}
    {% generation %}{{ m['content'] }}{% endgeneration %}
{% endfor %}
{% if add_generation_prompt %}<assistant>{% endif %}"""

MESSAGES = [
    {"role": "system", "content": "Answer in <b>bold</b> & be brief."},
    {"role": "user", "content": "héllo 世界"},
    {"role": "assistant", "content": "  hi  "},
    {"role": "user", "content": "again"},
]


def model_folder(tmp_path: Path, template: str | None, as_file: bool = False) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(shared("models", "tiny"), folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    if template is not None and as_file:
        (folder / "chat_template.jinja").write_text(template)
    elif template is not None:
        config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_the_shared_tokenizers_template_is_used() -> None:
    template = ChatTemplate.load(shared("models", "tiny"))
    assert template is not None
    prompt = chat_prompt([{"role": "user", "content": "hi"}], template)
    assert prompt == "user: hi\nassistant:"


def test_without_a_template_the_documented_join_is_the_fallback(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, None)
    assert ChatTemplate.load(folder) is None
    assert ChatTemplate.load(None) is None
    assert chat_prompt([{"role": "user", "content": "hi"}], None) == "user: hi\nassistant: "


def test_a_chat_template_jinja_file_is_read(tmp_path: Path) -> None:
    template = ChatTemplate.load(model_folder(tmp_path, CHATML, as_file=True))
    assert template is not None
    assert template.render([{"role": "user", "content": "x"}]).endswith(
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    )


def test_named_templates_use_the_default(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, None)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = [
        {"name": "tool_use", "template": "TOOLS"},
        {"name": "default", "template": "DEFAULT"},
    ]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    template = ChatTemplate.load(folder)
    assert template is not None and template.render([]) == "DEFAULT"


def test_content_parts_are_joined_before_the_template_sees_them() -> None:
    template = ChatTemplate(CHATML)
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert "user\nab<|im_end|>" in template.render([{"role": "user", "content": parts}])


def test_a_template_that_raises_is_a_client_error_naming_messages() -> None:
    template = ChatTemplate(LLAMA3, {"bos_token": "<s>"})
    with pytest.raises(EngineError) as err:
        template.render([{"role": "assistant", "content": "first"}])
    assert err.value.status == 400
    assert err.value.message.startswith("messages:")
    assert "alternate" in err.value.message


async def test_the_mocker_counts_the_templated_prompt(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, CHATML)
    engine = MockerEngine(model_path=str(folder), speedup_ratio=1e6)
    messages = [{"role": "user", "content": "hello"}]
    items = [i async for i in engine.generate("chat", {"messages": messages, "max_tokens": 1})]
    expected = ChatTemplate(CHATML).render(messages)
    assert items[-1].prompt_tokens == HFTokenizer(folder).count(expected)  # type: ignore[union-attr]
    assert items[-1].prompt_tokens != HFTokenizer(folder).count(chat_prompt(messages))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "source", [CHATML, LLAMA3, TOOLS_AND_BLOCKS], ids=["chatml", "llama3", "blocks"]
)
def test_rendering_matches_transformers_apply_chat_template(tmp_path: Path, source: str) -> None:
    need_transformers()
    from transformers import AutoTokenizer

    folder = model_folder(tmp_path, source)
    theirs = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    ours = ChatTemplate.load(folder)
    assert ours is not None
    messages = MESSAGES if source != LLAMA3 else MESSAGES[1:]
    expected = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ours.render(messages) == expected

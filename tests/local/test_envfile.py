"""The `up --env-file` format: NAME=VALUE lines, documented in docs/local.md."""

from __future__ import annotations

import pytest

from drivetrain.api.errors import InvalidGraph
from drivetrain.local.envfile import parse_env_file


def test_pairs_comments_export_and_quotes() -> None:
    text = (
        "# a comment\n\n"
        "HF_TOKEN=hf_abc\n"
        "export REGION = eu-west \n"
        'QUOTED="a b # not a comment"\n'
        "SINGLE='$(NOT_EXPANDED) ${NOR_THIS}'\n"
        "EMPTY=\n"
        "EQUALS=a=b\n"
        "HF_TOKEN=later-wins\n"
    )
    assert parse_env_file(text, "x.env") == {
        "HF_TOKEN": "later-wins",
        "REGION": "eu-west",
        "QUOTED": "a b # not a comment",
        "SINGLE": "$(NOT_EXPANDED) ${NOR_THIS}",
        "EMPTY": "",
        "EQUALS": "a=b",
    }


def test_every_bad_line_is_named() -> None:
    with pytest.raises(InvalidGraph) as exc:
        parse_env_file("OK=1\nno pair here\n1BAD=x\n=value\n", "x.env")
    assert [(e.file, e.line) for e in exc.value.errors] == [
        ("x.env", 2),
        ("x.env", 3),
        ("x.env", 4),
    ]
    assert "expected NAME=VALUE" in str(exc.value.errors[0])

"""The docs match the code: every command has help, and the README's reference is --help.

Run `UPDATE_README=1 pytest tests/test_docs.py` after changing a command to rewrite the
README's command reference from the live `--help` texts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from aggregator.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BEGIN = "<!-- command reference: generated from --help by tests/test_docs.py -->"
END = "<!-- end of command reference -->"
WIDTH = 100


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
    return found


def help_text(path: tuple[str, ...]) -> str:
    context = click.Context(
        cli, info_name="aggregator", terminal_width=WIDTH, max_content_width=WIDTH
    )
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
        context = click.Context(command, info_name=name, parent=context)
    return command.get_help(context)


def reference() -> str:
    blocks = [BEGIN, ""]
    for path in [(), *commands()]:
        title = " ".join(("aggregator", *path))
        blocks += [f"### `{title}`", "", "```", help_text(path), "```", ""]
    blocks.append(END)
    return "\n".join(blocks)


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 20, f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help",):
            assert param.help, f"option {param.opts} of {' '.join(path)} has no help text"


def test_readme_command_reference_matches_help() -> None:
    text = README.read_text(encoding="utf-8")
    expected = reference()
    if os.environ.get("UPDATE_README"):
        if BEGIN in text:
            start, end = text.index(BEGIN), text.index(END) + len(END)
            text = text[:start] + expected + text[end:]
        else:
            text = text.rstrip() + "\n\n## Command reference\n\n" + expected + "\n"
        README.write_text(text, encoding="utf-8")
    assert BEGIN in text and END in text, "README.md has no generated command reference"
    actual = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert actual == expected, (
        "README's command reference drifted from --help; "
        "run UPDATE_README=1 pytest tests/test_docs.py"
    )


def test_readme_mentions_every_command() -> None:
    text = README.read_text(encoding="utf-8").split(BEGIN)[0]
    missing = [name for (name,) in [p for p in commands() if len(p) == 1] if
               not re.search(rf"aggregator (?:--\S+ \S+ )*{name}\b", text)]  # fmt: skip
    assert missing == [], f"README usage never shows: {missing}"


def test_real_help_output_matches_the_reference_commands() -> None:
    # The installed entry point prints the same commands the reference documents.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "aggregator"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    listed = set(re.findall(r"^  (\w[\w-]*)\s", result.stdout.split("Commands:")[1], re.M))
    assert listed == {p[0] for p in commands()}

"""Every command's --help shows its whole text: rich markup would swallow an unescaped ``[word ...]``, and the
Markdown the help is rendered with (paragraphs reflowed to the terminal) an unquoted ``<tag>`` or ``*emphasis*``."""

import re

import pytest
import typer
from typer.testing import CliRunner

from numbnn.cli.main import app

# rich's markup tags start with "[" and a lower-case letter, "#", "/" or "@" (its RE_TAGS); "[[x]]" loses
# its inner "[x]". Rendered help drops such a tag, so every one must be escaped as "\[".
UNESCAPED_TAG = re.compile(r"(?<!\\)\[(?=[a-z#/@\[])")


def help_texts(command, path: str = "numbnn"):
    """(where, text) of a command, its options and its subcommands (typer's own command classes)."""
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from help_texts(sub, f"{path} {name}")


def test_no_help_text_loses_words_to_rich_markup():
    texts = list(help_texts(typer.main.get_command(app)))
    assert len(texts) > 50  # the whole command tree was walked
    lost = [(where, text) for where, text in texts if UNESCAPED_TAG.search(text)]
    assert not lost, lost


def _commands(command, path=()):
    """The argument paths of every command and group below ``command``."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, path + (name,))


def _words(text: str) -> list[str]:
    """A help text's words as rendered: backticks only mark code spans, ``\\[`` is an escaped bracket."""
    return text.replace("`", "").replace("\\[", "[").split()


@pytest.mark.parametrize("path", list(_commands(typer.main.get_command(app))), ids=" ".join)
def test_rendered_help_keeps_every_word(path):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "1000", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    rendered = set(result.output.split())
    missing = [word for text in texts for word in _words(text) if word not in rendered]
    assert not missing, missing

"""Every command's --help shows its whole text: rich markup would swallow an unescaped ``[word ...]``."""

import re

import typer

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

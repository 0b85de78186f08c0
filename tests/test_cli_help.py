"""Every command's --help renders (rich reads [..] in help texts as markup: an unbalanced tag crashed it)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pixelforge.cli import app


def _commands():
    import typer

    command = typer.main.get_command(app)
    out = [[]]
    for name, sub in command.commands.items():
        out.append([name])
        out += [[name, child] for child in getattr(sub, "commands", {})]
    return out


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w) or "pixelforge")
def test_help_renders(words):
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Usage" in result.output

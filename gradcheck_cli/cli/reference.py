"""The manual's reference tables, made from the definitions themselves: every
command's options as ``--help`` shows them (click builds them from the option table),
the exit codes from ``EXIT_CODES``, the JSON fields from ``REPORT_FIELDS`` and
``PARAMETER_FIELDS``.  The docs site inserts them at build time (``docs/hooks.py``),
so the manual cannot drift from the code."""

from __future__ import annotations

import click

from ..core.result import EXIT_CODES, PARAMETER_FIELDS, REPORT_FIELDS
from .main import cli


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _command(path: str) -> click.Command:
    command: click.Command = cli
    for part in path.split():
        assert isinstance(command, click.Group), path
        found = command.commands.get(part)
        if found is None:
            raise KeyError(f"no command 'gradcheck {path}'")
        command = found
    return command


def options_table(path: str) -> str:
    """``gradcheck PATH``'s options (and arguments) as a markdown table, in the words of
    its ``--help``."""
    command = _command(path)
    with click.Context(command, info_name=f"gradcheck {path}") as ctx:
        rows = ["| option | meaning |", "| --- | --- |"]
        for param in command.get_params(ctx):
            if isinstance(param, click.Argument):
                rows.append(f"| `{_cell(param.make_metavar(ctx))}` | the argument |")
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                rows.append(f"| `{_cell(record[0])}` | {_cell(record[1])} |")
    return "\n".join(rows)


def exit_codes_table() -> str:
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(rows)


def json_fields_table(which: str = "report") -> str:
    fields = REPORT_FIELDS if which == "report" else PARAMETER_FIELDS
    rows = ["| key | type | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{key}` | {kind} | {_cell(meaning)} |" for key, (kind, meaning) in fields.items()]
    return "\n".join(rows)

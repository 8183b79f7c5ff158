"""Build hook: fill in the reference tables from the code (``gradcheck_cli.cli.reference``)."""

import re

from gradcheck_cli.cli.reference import exit_codes_table, json_fields_table, options_table

MARKER = re.compile(r"<!-- generated: ([a-z-]+)(?: ([a-z ]+))? -->")


def generated(kind: str, argument: str) -> str:
    """The table a marker stands for."""
    if kind == "options":
        return options_table(argument)
    if kind == "exit-codes":
        return exit_codes_table()
    if kind == "json":
        return json_fields_table(argument)
    raise ValueError(f"unknown generated table {kind!r}")


def fill(markdown: str) -> str:
    return MARKER.sub(lambda m: generated(m.group(1), (m.group(2) or "").strip()), markdown)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    return fill(markdown)

"""The manual: every example command in the README and the docs runs as written and
ends as the text says; the reference tables are made from the code and say what the
command line says."""

import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from gradcheck_cli.cli.main import cli
from gradcheck_cli.cli.reference import exit_codes_table, json_fields_table, options_table
from gradcheck_cli.core.result import EXIT_CODES, PARAMETER_FIELDS, REPORT_FIELDS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# Example lines that stand for a command rather than being one, and why they are not run.
NOT_RUN = {
    "gradcheck func FILE.py:LOSS": "a synopsis with placeholders",
    "gradcheck func package.module:loss": "a module the reader has, not this repository",
    "gradcheck func $SIM": "the expensive simulation (tens of seconds per run); tests/test_workers.py runs "
    "the same options on a cheap loss",
    "gradcheck func benchmarks/expensive.py:simulation": "the same expensive simulation",
}


def _examples() -> list[tuple[str, str]]:
    """``(page, command)`` for every command line in a code block of the manual."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            lines = block.split("\n")
            k = 0
            while k < len(lines):
                line = lines[k].removeprefix("$ ")
                if line.startswith(("gradcheck ", "python -m gradcheck_cli ")):
                    command = line.split(" # ")[0].split("  #")[0].rstrip()
                    while command.endswith("\\") and k + 1 < len(lines):
                        k += 1
                        command = command[:-1] + " " + lines[k].split(" # ")[0].split("  #")[0].strip()
                    found.append((str(page.relative_to(ROOT)), command.strip()))
                k += 1
    return found


# Commands the manual shows failing on purpose (a mistake of the seed's), and their exit codes.
SHOWN_FAILING = {
    'theta=X.T@(X@theta - y)"': 1,  # the 1/m forgotten
    "sigmoid(sigmoid(X@W))": 1,  # sigma' applied to the activation's output
    "theta=(X@theta - y).T@X/m": 2,  # dimensions that do not match
    "W2.T*sigmoid(X@W1)": 1,  # the seed's sigma_{l+1} for sigma_l
}

EXAMPLES = _examples()
RUN = [(page, c) for page, c in EXAMPLES if not any(c.startswith(p) for p in NOT_RUN)]


def test_the_manual_has_examples_and_skips_only_the_named_ones():
    assert len(RUN) >= 20
    skipped = [c for _, c in EXAMPLES if any(c.startswith(p) for p in NOT_RUN)]
    assert len(skipped) <= 8, skipped


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder holding the repository's examples, configs and benchmarks, as the manual
    assumes: commands run there, and what they write stays there."""
    for name in ("examples", "configs", "benchmarks"):
        shutil.copytree(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("page", "command"), RUN, ids=[f"{p}:{c[:60]}" for p, c in RUN])
def test_every_example_command_runs_as_written(page, command, workspace, runner):
    args = shlex.split(command)
    args = args[3:] if args[0] == "python" else args[1:]
    if "--plot" in args and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("--plot needs matplotlib (the [plot] extra)")
    result = runner.invoke(cli, args)
    wrong = any(word in command for word in ("_wrong", "_transposed"))
    expected = next((code for piece, code in SHOWN_FAILING.items() if piece in command), 1 if wrong else 0)
    assert result.exit_code == expected, f"{page}: {command}\n{result.output}"


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in cli.commands:
        assert f"gradcheck {command}" in readme


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav


def test_the_readme_is_a_landing_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


# ---- the reference, made from the code -------------------------------------------------------


def _fill(markdown: str) -> str:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return str(hooks.fill(markdown))


@pytest.mark.parametrize("page", [p for p in PAGES if "generated:" in p.read_text(encoding="utf-8")], ids=str)
def test_every_generated_table_is_filled(page):
    filled = _fill(page.read_text(encoding="utf-8"))
    assert "<!-- generated" not in filled
    assert "| --- |" in filled


def _commands(group: click.Group = cli, prefix: str = "") -> list[str]:
    out = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix}{name} ")
        else:
            out.append(f"{prefix}{name}")
    return out


@pytest.mark.parametrize("path", _commands())
def test_the_options_reference_says_what_help_says(path, runner):
    table = options_table(path)
    help_text = " ".join(runner.invoke(cli, [*path.split(), "--help"]).output.split())
    for line in table.splitlines()[2:]:
        flags = re.findall(r"--[a-z][a-z-]*", line.split("|")[1])
        for flag in flags:
            assert flag in help_text, (path, flag)
    documented = set(re.findall(r"--[a-z][a-z-]*", table))
    assert documented >= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text)) - {"--help"}


def test_the_exit_code_table_and_help_list_every_code(runner):
    table = exit_codes_table()
    help_text = " ".join(runner.invoke(cli, ["--help"]).output.split())
    for code in EXIT_CODES:
        assert f"| {code} |" in table
        assert f" {code} " in help_text.split("Exit codes:")[1]
    assert set(EXIT_CODES) == {0, 1, 2, 3, 130}


def test_the_json_reference_lists_exactly_the_report_fields(runner):
    import json

    result = runner.invoke(cli, ["mlp", "--layers", "3,4,2", "--json"])
    report = json.loads(result.stdout)
    assert list(report) == list(REPORT_FIELDS)
    assert list(report["parameters"][0]) == list(PARAMETER_FIELDS)
    for key in REPORT_FIELDS:
        assert f"`{key}`" in json_fields_table("report")

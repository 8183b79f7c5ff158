"""The README's Python example runs as written and does what it says."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_python_api_example_runs():
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "assert_gradients" in b]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["report"].passed
    namespace["test_my_backward_pass"]()  # passes silently


def test_readme_setup_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in README.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    assert test_command in ci.splitlines()
    assert re.search(r"^python3 -m venv .* && gradcheck mlp --layers 4,8,3$", README, re.M)

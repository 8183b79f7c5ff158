"""The package's shape: every module imports on its own, imports stay at the top,
the layers import downwards only, and the package is typed and versioned once."""

import ast
import importlib.metadata
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import gradcheck_cli

PACKAGE = Path(gradcheck_cli.__file__).resolve().parent
MODULES = sorted(
    ["gradcheck_cli"]
    + [
        m.name
        for m in pkgutil.walk_packages(gradcheck_cli.__path__, prefix="gradcheck_cli.")
        if not m.name.endswith("__main__")
    ]
)


def _source(module: str) -> Path:
    rel = module.split(".")[1:]
    path = PACKAGE.joinpath(*rel)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _internal_imports(module: str) -> tuple[set[str], list[str]]:
    """Package modules imported at module level, and any imported inside a function."""
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    package = module if _source(module).name == "__init__.py" else module.rpartition(".")[0]
    top, nested = set(), []

    def resolve(node: ast.ImportFrom) -> list[str]:
        if node.level == 0:
            base = node.module or ""
        else:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        if not base.startswith("gradcheck_cli"):
            return []
        found = []
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.append(candidate if candidate in MODULES else base)
        return found

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    nested.append(f"{module}:{inner.lineno}")
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            top.update(resolve(node))
        elif isinstance(node, ast.Import):
            top.update(a.name for a in node.names if a.name.startswith("gradcheck_cli"))
    return top - {module}, nested


GRAPH = {m: _internal_imports(m)[0] for m in MODULES}


def test_modules_are_discovered():
    assert {
        "gradcheck_cli.check",
        "gradcheck_cli.options",
        "gradcheck_cli.result",
        "gradcheck_cli.rule",
        "gradcheck_cli.testing",
        "gradcheck_cli.errors",
        "gradcheck_cli.models.base",
    } <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own_in_a_fresh_interpreter(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("module", MODULES)
def test_no_import_inside_a_function(module):
    assert _internal_imports(module)[1] == []


def test_no_import_cycle():
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", " -> ".join([*path, m])
        state[m] = "open"
        for n in sorted(GRAPH.get(m, ())):
            # A package's __init__ re-exports its modules; a module importing its own
            # package's __init__ is the only edge that would close a loop through it.
            if n in GRAPH and not (m.startswith(n + ".")):
                visit(n, [*path, m])
        state[m] = "done"
        order.append(m)

    for m in MODULES:
        visit(m, [])


def _reaches(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for n in GRAPH.get(todo.pop(), ()):
            if n not in seen and not module.startswith(n + "."):
                seen.add(n)
                todo.append(n)
    return seen


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("gradcheck_cli.result", {"gradcheck_cli.report", "gradcheck_cli.cli", "gradcheck_cli.check"}),
        ("gradcheck_cli.rule", {"gradcheck_cli.report", "gradcheck_cli.result", "gradcheck_cli.check"}),
        ("gradcheck_cli.check", {"gradcheck_cli.report", "gradcheck_cli.cli", "gradcheck_cli.config"}),
        ("gradcheck_cli.numeric", {"gradcheck_cli.check", "gradcheck_cli.options", "gradcheck_cli.engine"}),
        ("gradcheck_cli.engine", {"gradcheck_cli.check", "gradcheck_cli.options", "gradcheck_cli.result"}),
        ("gradcheck_cli.models.mlp", {"gradcheck_cli.engine", "gradcheck_cli.numeric", "gradcheck_cli.check"}),
        ("gradcheck_cli.vector", {"gradcheck_cli.check", "gradcheck_cli.derivatives", "gradcheck_cli.result"}),
        ("gradcheck_cli.derivatives", {"gradcheck_cli.report", "gradcheck_cli.cli", "gradcheck_cli.userfunc"}),
        ("gradcheck_cli.diagnosis", {"gradcheck_cli.check", "gradcheck_cli.derivatives", "gradcheck_cli.report"}),
        ("gradcheck_cli.zoo", {"gradcheck_cli.check", "gradcheck_cli.numeric", "gradcheck_cli.result"}),
        ("gradcheck_cli.workers", {"gradcheck_cli.numeric", "gradcheck_cli.options", "gradcheck_cli.check"}),
        ("gradcheck_cli.evaluation", {"gradcheck_cli.workers", "gradcheck_cli.numeric", "gradcheck_cli.options"}),
        ("gradcheck_cli.checkpoint", {"gradcheck_cli.workers", "gradcheck_cli.evaluation", "gradcheck_cli.numeric"}),
    ],
)
def test_layers_import_downwards(module, forbidden):
    assert not (_reaches(module) & forbidden)


def test_result_and_rule_import_no_renderer():
    for module in ("result", "rule"):
        text = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
        assert "import rich" not in text and "from rich" not in text and "click" not in text


def test_check_knows_no_concrete_model():
    # It reaches the MLP only through the evaluator registry, never by name or type.
    assert not GRAPH["gradcheck_cli.check"] & {"gradcheck_cli.models.mlp", "gradcheck_cli.models.linreg"}
    text = (PACKAGE / "check.py").read_text(encoding="utf-8")
    assert "import MLP" not in text and "LinearRegression" not in text and "isinstance(model" not in text


def test_version_is_single_sourced():
    assert importlib.metadata.version("gradcheck-cli") == gradcheck_cli.__version__
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and "gradcheck_cli._version.__version__" in pyproject


def test_package_is_typed_and_licensed():
    assert (PACKAGE / "py.typed").is_file()
    license_text = (PACKAGE.parent / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert 'license = { text = "MIT" }' in (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")


def test_every_library_error_derives_from_one_base():
    from gradcheck_cli import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 6
    for cls in classes:
        assert issubclass(cls, gradcheck_cli.GradcheckError), cls
        assert cls.__name__ in gradcheck_cli.__all__

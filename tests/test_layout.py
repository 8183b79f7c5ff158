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
        "gradcheck_cli.checks.gradient",
        "gradcheck_cli.core.options",
        "gradcheck_cli.core.result",
        "gradcheck_cli.core.rule",
        "gradcheck_cli.checks.testing",
        "gradcheck_cli.core.errors",
        "gradcheck_cli.models.base",
    } <= set(MODULES)


@pytest.mark.slow
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


# The floors, lowest first: a module imports only from floors below its own (and from
# its own package); packages on one floor do not import each other.  This list is the
# single statement of the architecture.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version",),
    ("core",),
    ("numerics", "execution", "models"),
    ("probes", "insight"),
    ("checks",),
    ("render",),
    ("cli",),
)
ROOT = {"gradcheck_cli", "gradcheck_cli.__main__"}  # the package's face: it may import any floor
FLOOR = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def _package(module: str) -> str:
    return module.split(".")[1]


def test_every_module_sits_on_a_floor():
    loose = [m for m in MODULES if m not in ROOT and _package(m) not in FLOOR]
    assert loose == []
    at_root = [m for m in MODULES if m.count(".") == 1 and not (PACKAGE / f"{_package(m)}").is_dir()]
    assert len(at_root) <= 3, at_root


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ROOT])
def test_imports_go_down_the_floors_only(module):
    own = _package(module)
    for target in GRAPH[module]:
        other = _package(target) if target != "gradcheck_cli" else None
        assert other is not None, f"{module} imports the package root"
        if other == own:
            continue
        assert FLOOR[other] < FLOOR[own], (
            f"{module} ({own}, floor {FLOOR[own]}) imports {target} ({other}, floor {FLOOR[other]})"
        )


def test_the_light_import_loads_no_renderer():
    code = (
        "import sys, gradcheck_cli; heavy = ('rich', 'plotext', 'click', 'matplotlib', 'dask', 'distributed'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_light_import_loads_only_the_library_floors():
    code = (
        "import sys, gradcheck_cli; print(' '.join(sorted(m for m in sys.modules if m.startswith('gradcheck_cli.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {_package(m) for m in out.stdout.split()}
    assert loaded <= {p for level in LAYERS[: FLOOR["checks"] + 1] for p in level}, loaded


def test_check_knows_no_concrete_model():
    # It reaches the MLP only through the evaluator registry, never by name or type.
    for module in ("gradcheck_cli.checks.gradient", "gradcheck_cli.checks.pipeline"):
        if module not in GRAPH:
            continue
        assert not GRAPH[module] & {"gradcheck_cli.models.mlp", "gradcheck_cli.models.linreg"}
        text = _source(module).read_text(encoding="utf-8")
        assert "import MLP" not in text and "LinearRegression" not in text and "isinstance(model" not in text


def test_version_is_single_sourced():
    assert importlib.metadata.version("gradcheck-cli") == gradcheck_cli.__version__
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and "gradcheck_cli._version.__version__" in pyproject


def test_package_is_typed_and_licensed():
    assert (PACKAGE / "py.typed").is_file()
    license_text = (PACKAGE.parent / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject  # an SPDX expression
    assert "==" not in pyproject.split("[project.optional-dependencies]")[1].split("[project.scripts]")[0]


def test_every_library_error_derives_from_one_base():
    from gradcheck_cli.core import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 6
    for cls in classes:
        assert issubclass(cls, gradcheck_cli.GradcheckError), cls
        assert cls.__name__ in gradcheck_cli.__all__


MAX_FUNCTION_LINES, MAX_CLASS_LINES = 100, 350


@pytest.mark.parametrize("module", MODULES)
def test_no_god_objects(module):
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno < MAX_FUNCTION_LINES, f"{module}.{node.name}"
        elif isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno < MAX_CLASS_LINES, f"{module}.{node.name}"


def test_the_sdist_carries_what_its_tests_need():
    manifest = (PACKAGE.parent / "MANIFEST.in").read_text(encoding="utf-8").split()
    for folder in ("tests", "examples", "configs", "docs"):
        assert folder in manifest

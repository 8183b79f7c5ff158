"""The supervisor: whatever the user's code does to its process, the exit code tells
the truth.  Each case runs the command in a process of its own (as CI does), with
user code that ends, crashes, hangs, forks, changes folder, prints or leaves a
thread behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck_cli import BadValueError, check_gradients, check_hessian, check_jacobian
from gradcheck_cli.execution.supervisor import Limits, can_supervise, supervised

pytestmark = [
    pytest.mark.skipif(not can_supervise(), reason="the supervisor needs fork (not on this platform)"),
    pytest.mark.slow,  # a fresh interpreter per case
]

HEADER = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np

    calls = [0]


    def grad(w):
        return {"w": 2 * w}


    def good(w):
        return float(np.sum(w * w))
    """
)

CASES = {
    # name: (body of loss(w), expected exit code, expected last line of stderr)
    "exit-0-at-start": (
        "os._exit(0)",
        2,
        "{f}:loss ended the check's process (exit code 0) outside the finite-difference moves (at the starting point, or the derivative under test); the code under test must return a value, not exit or crash",
    ),
    "exit-3-mid-check": (
        "calls[0] += 1\n    if calls[0] > 3:\n        os._exit(3)\n    return float(np.sum(w * w))",
        2,
        "{f}:loss ended the check's process (exit code 3) with w[1] moved; the code under test must return a value, not exit or crash",
    ),
    "segfault": (
        "calls[0] += 1\n    if calls[0] > 2:\n        os.kill(os.getpid(), signal.SIGSEGV)\n    return float(np.sum(w * w))",
        2,
        "{f}:loss ended the check's process (signal SIGSEGV) with w[0] moved; the code under test must return a value, not exit or crash",
    ),
    "killed": (
        "os.kill(os.getpid(), signal.SIGKILL)",
        2,
        "{f}:loss ended the check's process (signal SIGKILL) outside the finite-difference moves (at the starting point, or the derivative under test); the code under test must return a value, not exit or crash",
    ),
}


def _module(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "user.py"
    path.write_text(HEADER + f"\n\ndef loss(w):\n    {body}\n", encoding="utf-8")
    return path


def _gradcheck(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gradcheck_cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def _installed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command, as users run it in a folder (``python -m`` would put the
    folder first on the module path itself)."""
    script = Path(sys.executable).with_name("gradcheck")
    if not script.is_file():
        pytest.skip("the gradcheck command is not installed beside this interpreter")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def _func(path: Path, *extra: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return _gradcheck(
        "func", f"{path}:loss", "--grad", f"{path}:grad", "--param", "w=3", *extra, cwd=cwd, timeout=timeout
    )


@pytest.mark.parametrize("case", list(CASES))
def test_user_code_that_ends_the_process_is_named_and_exits_2(case, tmp_path):
    body, code, line = CASES[case]
    path = _module(tmp_path, body)
    result = _func(path)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: " + line.format(f=path)
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_exit_0_in_a_suite_is_an_error_and_the_later_checks_and_junit_survive(tmp_path):
    bad = _module(tmp_path, "os._exit(0)")
    good = tmp_path / "good.py"
    good.write_text(HEADER + "\n\nloss = good\n", encoding="utf-8")
    suite = tmp_path / "suite.toml"
    suite.write_text(
        textwrap.dedent(
            f"""
            [[check]]
            name = "ends"
            model = "func"
            loss = "{bad}:loss"
            grad = "{bad}:grad"
            params = {{ w = "3" }}

            [[check]]
            name = "fine"
            model = "func"
            loss = "{good}:loss"
            grad = "{good}:grad"
            params = {{ w = "3" }}
            """
        ),
        encoding="utf-8",
    )
    junit = tmp_path / "out.xml"
    result = _gradcheck("run", str(suite), "--junit", str(junit), "--json")
    assert result.returncode == 2
    data = json.loads(result.stdout)
    statuses = [c["status"] for c in data["checks"]]
    assert statuses == ["ERROR", "PASS"]
    assert "ended the check's process (exit code 0)" in data["checks"][0]["error"]
    assert junit.is_file() and "ended the check" in junit.read_text(encoding="utf-8")


def test_a_hang_at_the_starting_point_is_stopped_by_the_timeout(tmp_path):
    path = _module(tmp_path, "time.sleep(600)")
    began = time.monotonic()
    result = _func(path, "--timeout", "1")
    assert time.monotonic() - began < 60
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {path}:loss did not return within the timeout of 1 s outside the finite-difference moves (at the "
        f"starting point, or the derivative under test), and was stopped; make it return, or give a larger timeout"
    )


def test_max_seconds_is_a_hard_wall_that_keeps_the_finished_rows(tmp_path):
    path = tmp_path / "user.py"
    path.write_text(
        HEADER
        + textwrap.dedent(
            """

            def loss(a, b):
                if b[0] != 1.0 and abs(b[0] - 1.0) < 0.5:  # b moved: slow from here on
                    time.sleep(30)
                return float(np.sum(a * a) + np.sum(b * b))


            def grad2(a, b):
                return {"a": 2 * a, "b": 2 * b}
            """
        ),
        encoding="utf-8",
    )
    init = tmp_path / "start.npz"
    np.savez(init, a=np.array([0.5, -0.3]), b=np.array([1.0, 2.0]))
    began = time.monotonic()
    result = _gradcheck(
        "func", f"{path}:loss", "--grad", f"{path}:grad2", "--param", "a=2", "--param", "b=2",
        "--init", str(init), "--max-seconds", "3", "--json",
    )  # fmt: skip
    assert time.monotonic() - began < 25
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert [p["name"] for p in report["parameters"]] == ["a"] and report["unchecked_parameters"] == ["b"]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the check ran past --max-seconds (3 s) and was stopped; ")
    assert f"{path}:loss was running with b[0] moved" in last


def test_a_thread_left_running_cannot_hold_the_exit(tmp_path):
    body = "threading.Thread(target=time.sleep, args=(600,)).start()\n    return float(np.sum(w * w))"
    path = _module(tmp_path, body)
    began = time.monotonic()
    result = _func(path, "-q")
    assert time.monotonic() - began < 60
    assert result.returncode == 0, result.stderr


def test_a_fork_in_user_code_cannot_print_the_report_twice(tmp_path):
    body = "if calls[0] == 0:\n        calls[0] = 1\n        os.fork()\n    return float(np.sum(w * w))"
    path = _module(tmp_path, body)
    result = _func(path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "PASS"  # one document, parsed whole


def test_chdir_in_user_code_cannot_move_the_junit_file(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    body = f"os.chdir({str(elsewhere)!r})\n    return float(np.sum(w * w))"
    path = _module(tmp_path, body)
    result = _func(path, "--junit", "report.xml", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report.xml").is_file() and not (elsewhere / "report.xml").exists()


def test_chdir_at_import_cannot_move_the_files_the_command_names(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "user.py").write_text(
        f"import os\nimport numpy as np\nos.chdir({str(elsewhere)!r})\n\n"
        "def loss(w, scale):\n    return float(np.sum(scale * w * w))\n\n"
        "def grad(w, scale):\n    return {'w': 2 * scale * w}\n",
        encoding="utf-8",
    )
    np.savez(tmp_path / "init.npz", w=np.arange(3.0))
    np.savez(tmp_path / "fixed.npz", scale=np.float64(2.0))
    files = ["--init", "init.npz", "--data", "fixed.npz", "--checkpoint", "run.ckpt", "--junit", "j.xml"]
    command = ["func", "user.py:loss", "--grad", "user.py:grad", *files, "--json"]
    result = _gradcheck(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"]["function"] == "user.py:loss"  # as given
    assert (tmp_path / "run.ckpt").is_file() and (tmp_path / "j.xml").is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    again = _gradcheck(*command, cwd=tmp_path)
    (note,) = json.loads(again.stdout)["notes"]
    assert note.startswith("resumed: 18 of 18 evaluations replayed from run.ckpt ")


def test_a_module_target_prefers_the_working_folders_file(tmp_path):
    (tmp_path / "random.py").write_text(HEADER + "\nloss = good\n", encoding="utf-8")
    result = _installed("func", "random:loss", "--grad", "random:grad", "--param", "w=3", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # the standard library's random has no grad
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[[check]]\nname = "m"\nmodel = "func"\nloss = "random:loss"\ngrad = "random:grad"\nparams = { w = "3" }\n',
        encoding="utf-8",
    )
    result = _gradcheck("run", str(suite), "--json", cwd=tmp_path.parent)  # from the suite's folder
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checks"][0]["status"] == "PASS"


def test_a_package_shadowed_by_a_loaded_module_is_refused_in_one_line(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").write_text(HEADER + "\nloss = good\n", encoding="utf-8")
    result = _installed("func", "json.sub:loss", "--grad", "json.sub:grad", "--param", "w=3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"Error: Invalid value for 'FILE.py:FUNCTION': the package 'json' in {tmp_path} has the name of a module "
        f"loaded already ("
    )
    assert result.stderr.endswith("); rename the package, or give the file: FILE.py:FUNCTION\n")


def test_user_prints_go_to_stderr_and_json_stays_whole(tmp_path):
    body = "print('hello from the loss'); os.write(1, b'raw bytes\\n')\n    return float(np.sum(w * w))"
    path = _module(tmp_path, body)
    result = _func(path, "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["status"] == "PASS"
    assert "hello from the loss" in result.stderr and "raw bytes" in result.stderr


def test_the_supervised_function_returns_and_forwards_progress():
    seen = []

    def work(channel):
        channel.send("progress", "advance", 3)
        return 41 + 1

    assert supervised(work, seen.append, Limits()) == 42
    assert seen == [("progress", "advance", 3)]


# ---- the command's own edges -----------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["sweep"]], ids=["gradcheck", "gradcheck sweep"])
def test_no_command_is_usage_and_exit_2(args):
    result = _gradcheck(*args)
    assert result.returncode == 2 and result.stdout == ""
    names = "expr, func, linreg, mlp, run, sweep, zoo" if not args else "func, linreg, mlp"
    path = " ".join(["gradcheck", *args])
    assert (
        result.stderr
        == f"Error: no command given; usage: {path} COMMAND [ARGS]..., COMMAND one of {names} ({path} --help)\n"
    )


def test_a_full_standard_output_is_one_line_and_exit_2():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "gradcheck_cli", "mlp", "--layers", "3,4,2"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: cannot write the report to standard output (No space left on device); the verdict was not shown"
    )


def test_a_closed_standard_output_is_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "mlp", "--layers", "3,4,2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        preexec_fn=lambda: __import__("os").close(1),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().endswith("(standard output is closed); the verdict was not shown")


def test_sigterm_ends_the_check_and_its_workers_quietly(tmp_path):
    path = _module(tmp_path, "time.sleep(0.2)\n    return float(np.sum(w * w))")
    command = [sys.executable, "-m", "gradcheck_cli", "func", f"{path}:loss", "--grad", f"{path}:grad"]
    process = subprocess.Popen(
        [*command, "--param", "w=40", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(4)
    process.terminate()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + 15
    assert "Traceback" not in err and "BrokenPipe" not in err
    survivors = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True, check=False).stdout
    assert survivors.strip() == ""


IN_DASK_WORKER = 'import multiprocessing\n    in_dask = "Dask" in multiprocessing.current_process().name\n    '


def test_a_loss_that_ends_its_dask_workers_is_one_line_in_bounded_time(tmp_path):
    pytest.importorskip("distributed")
    path = _module(tmp_path, IN_DASK_WORKER + "if in_dask:\n        os._exit(3)\n    return float(np.sum(w * w))")
    result = _func(path, "--dask", "local:2", timeout=240)
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: {path}:loss ended each Dask worker process that ran it (the cluster gave up on the task); the code "
        f"under test must return a value, not exit or crash\n"
    )


def test_ctrl_c_with_dask_prints_no_worker_tracebacks(tmp_path):
    pytest.importorskip("distributed")
    path = _module(tmp_path, "time.sleep(0.05)\n    return float(np.sum(w * w))")
    command = [sys.executable, "-m", "gradcheck_cli", "func", f"{path}:loss", "--grad", f"{path}:grad"]
    process = subprocess.Popen(
        [*command, "--param", "w=400", "--dask", "local:2", "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "not checked (interrupted): w" in out, (out, err)
    assert err == ""  # the rows finished (none here) and the verdict INCOMPLETE, on stdout


def test_deep_nesting_in_a_suite_or_a_constant_is_one_line(tmp_path):
    suite = tmp_path / "deep.toml"
    suite.write_text('[[check]]\nname = "x"\nmodel = "mlp"\nlayers = ' + "[" * 5000 + "]" * 5000 + "\n")
    result = _gradcheck("run", str(suite))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: {suite}: values nested too deeply to read (arrays or tables inside one another, beyond Python's "
        f"recursion limit of {sys.getrecursionlimit()}); a suite's values are flat"
    )
    path = _module(tmp_path, "return float(np.sum(w * w))")
    result = _func(path, "--const", "x=" + "[" * 5000 + "]" * 5000)
    assert result.returncode == 2
    assert "the value of x is nested too deeply to read" in result.stderr and "Traceback" not in result.stderr


# ---- every value read safely -----------------------------------------------------------------


class _TensorLike:
    """What a framework hands back: no float(), an array only after detach()."""

    def __init__(self, value):
        self.value = np.asarray(value, dtype=np.float64)
        self.requires_grad = True

    def detach(self):
        return _Detached(self.value)

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")


class _Detached:
    def __init__(self, value):
        self.value = value

    def cpu(self):
        return self

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)


def _square(p):
    return float(np.sum(p["w"] ** 2))


def _square_grad(p):
    return {"w": 2 * p["w"]}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: Fraction(x).limit_denominator(10**12) + Fraction(1, 3),
        lambda x: Decimal(x) + Decimal("0.5"),
        _TensorLike,
    ],
    ids=["Fraction", "Decimal", "tensor that requires grad"],
)
def test_numbers_of_other_kinds_are_read_as_numbers(wrap):
    report = check_gradients(lambda p: wrap(_square(p)), _square_grad, {"w": np.array([0.3, -1.2, 2.0])})
    assert report.status == "PASS"


def test_real_torch_tensors_that_require_grad_are_read():
    torch = pytest.importorskip("torch")

    def loss(p):
        w = torch.tensor(p["w"], dtype=torch.float64, requires_grad=True)
        return (w**2).sum()

    def grad(p, wrong=1.0):
        w = torch.tensor(p["w"], dtype=torch.float64, requires_grad=True)
        return {"w": 2 * w * wrong}

    point = {"w": np.array([0.3, -1.2, 2.0])}
    assert check_gradients(loss, grad, point).status == "PASS"
    assert check_gradients(loss, lambda p: grad(p, 1.01), point).status == "FAIL"

    def square(p):
        return torch.tensor(p["w"], requires_grad=True) ** 2

    def jacobian(p, wrong=1.0):
        return {"w": torch.diag(torch.tensor(2 * wrong * p["w"], requires_grad=True))}

    assert check_jacobian(square, jacobian, point).status == "PASS"
    assert check_jacobian(square, lambda p: jacobian(p, 1.01), point).status == "FAIL"

    def hessian(p, wrong=1.0):
        return torch.diag(torch.tensor(2 * wrong * np.ones(3), requires_grad=True))

    assert check_hessian(loss, point, hessian=hessian).status == "PASS"
    assert check_hessian(loss, point, hessian=lambda p: hessian(p, 1.02)).status == "FAIL"


@pytest.mark.parametrize(
    "masked",
    [lambda x: np.ma.masked_array([x], mask=[True]).sum(), lambda x: np.ma.masked_array(x, mask=True)],
    ids=["masked sum", "masked 0-d"],
)
def test_a_fully_masked_loss_is_refused_not_read(masked):
    with pytest.raises(BadValueError) as info:
        check_gradients(lambda p: masked(_square(p)), _square_grad, {"w": np.ones(3)})
    assert str(info.value) == (
        "loss returned a masked value at the starting point; a masked entry has no value to check: return the loss "
        "as a plain float (fill or drop the masked entries first)"
    )


class _BrokenMapping(dict):
    def __getitem__(self, key):
        raise RuntimeError("lookup failed")


def test_a_gradient_mapping_whose_lookup_raises_is_one_typed_error(tmp_path):
    with pytest.raises(BadValueError) as info:
        check_gradients(_square, lambda p: _BrokenMapping(w=2 * p["w"]), {"w": np.ones(3)})
    assert str(info.value) == (
        "gradient returned a _BrokenMapping whose lookup raised RuntimeError: lookup failed; "
        "return a plain dict name -> array"
    )
    path = tmp_path / "user.py"
    path.write_text(
        HEADER + "\n\nclass Bad(dict):\n    def __getitem__(self, k):\n        raise RuntimeError('no')\n\n\n"
        "def loss(w):\n    return float(np.sum(w * w))\n\n\ndef bad(w):\n    return Bad(w=2 * w)\n",
        encoding="utf-8",
    )
    result = _gradcheck("func", f"{path}:loss", "--grad", f"{path}:bad", "--param", "w=3")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: {path}:bad returned a Bad whose lookup raised RuntimeError: no; return a plain dict name -> array"
    )


def test_a_resumed_check_says_so_in_the_table_and_the_json(tmp_path):
    path = _module(tmp_path, "return float(np.sum(w * w))")
    checkpoint = tmp_path / "run.ckpt"
    first = _func(path, "--checkpoint", str(checkpoint), "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["notes"] == []
    again = _func(path, "--checkpoint", str(checkpoint), "--json")
    (note,) = json.loads(again.stdout)["notes"]
    assert note.startswith(f"resumed: 18 of 18 evaluations replayed from {checkpoint} ")
    table = _func(path, "--checkpoint", str(checkpoint))
    assert f"resumed: 18 of 18 evaluations replayed from {checkpoint}" in table.stdout


def test_a_check_name_cannot_restyle_the_terminal_or_the_log(tmp_path):
    suite = tmp_path / "evil.toml"
    suite.write_text('[[check]]\nname = "evil\\u001b[31mRED [bold]x[/bold]"\nmodel = "linreg"\n', encoding="utf-8")
    result = _gradcheck("run", str(suite))
    assert result.returncode == 0
    assert "\x1b" not in result.stdout
    assert "evil\\x1b[31mRED [bold]x[/bold]" in result.stdout  # escaped, and no markup taken from it


def test_junit_into_a_folder_and_plot_that_would_overwrite(tmp_path):
    result = _gradcheck("mlp", "--layers", "3,4,2", "--junit", str(tmp_path / "reports") + "/", "-q")
    assert result.returncode == 0 and (tmp_path / "reports" / "gradcheck.xml").is_file()
    existing = tmp_path / "chart.png"
    existing.write_bytes(b"mine")
    result = _gradcheck("sweep", "mlp", "--layers", "3,4,2", "--plot", str(existing))
    assert result.returncode == 2 and existing.read_bytes() == b"mine"
    assert result.stderr.strip() == (
        f"Error: Invalid value for '--plot': {str(existing)!r} exists; give a new path, or --overwrite to replace it"
    )


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_status_column_survives_a_narrow_terminal(width):
    from rich.console import Console

    from gradcheck_cli import check_model
    from gradcheck_cli.models import MLP, MLPSpec
    from gradcheck_cli.render.report import render_report

    report = check_model(MLP(MLPSpec.build([4, 8, 3])))
    console = Console(width=width, force_terminal=True, color_system=None, record=True)
    console.print(render_report(report, width))
    lines = console.export_text().splitlines()
    rows = [line for line in lines if line.strip().split(" ")[0] in ("W1", "b1", "W2", "b2")]
    assert len(rows) == 4 and all(line.rstrip().endswith("PASS") for line in rows), lines


@pytest.mark.parametrize("option", ["--init", "--data"])
def test_object_arrays_are_refused_never_unpickled(option, tmp_path):
    npz = tmp_path / "objects.npz"
    np.savez(npz, w=np.array([1, "a", None], dtype=object))
    path = _module(tmp_path, "return float(np.sum(w * w))")
    result = _func(path, option, str(npz))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: Invalid value for '{option}': {npz}: w is an array of Python objects, which is not loaded "
        f"(it would be unpickled); save numbers, e.g. numpy.savez(file, w=array.astype(float))"
    )


def test_a_failing_assert_in_pytest_shows_the_table_not_our_frames(tmp_path):
    test_file = tmp_path / "test_user.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from gradcheck_cli import assert_gradients


            def test_wrong():
                assert_gradients(lambda p: float(np.sum(p["W"] ** 2)), lambda p: {"W": 3 * p["W"]},
                                 {"W": np.arange(12.0).reshape(3, 4)})
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "gradient check failed" in result.stdout and "looks off by a constant factor" in result.stdout
    assert "gradcheck_cli" not in result.stdout  # no frame of ours
    assert "array([[" not in result.stdout  # no parameter arrays


# ---- fuzz: user code that ends, forks, hangs, chdirs, leaves threads ---------------------------

HOSTILE = {
    # what the code under test does once, and the exit code the command must give
    "exit-0": ("os._exit(0)", 2),
    "sys-exit": ("sys.exit(3)", 2),
    "segfault": ("os.kill(os.getpid(), signal.SIGSEGV)", 2),
    "hang": ("time.sleep(600)", 2),
    "fork": ("if os.fork() == 0:\n    print('the fork says hello')", 0),
    "chdir": ("os.chdir(ELSEWHERE)", 0),
    "thread": ("threading.Thread(target=time.sleep, args=(600,)).start()", 0),
    "nothing": ("pass", 0),
}
WHEN = ["import", "start", "mid-check", "gradient"]
HOSTILE_OPTIONS = ["--json", "-q", "--workers=2", "--junit=out.xml", "--checkpoint=run.ckpt", "--method=forward"]


def _hostile_module(folder: Path, action: str, when: str) -> Path:
    body = [
        HEADER,
        f"ELSEWHERE = {str(folder / 'elsewhere')!r}",
        f"WHEN = {when!r}",
        "\ndef act():",
        textwrap.indent(HOSTILE[action][0], "    "),
        "\nif WHEN == 'import':\n    act()",
        "\ndef loss(w):",
        "    calls[0] += 1",
        "    if (WHEN, calls[0]) in (('start', 1), ('mid-check', 9)):\n        act()",
        "    return float(np.sum(w * w))",
        "\ndef grad_once(w):",
        "    if WHEN == 'gradient' and calls[0] >= 0:\n        calls[0] = -1000\n        act()",
        "    return {'w': 2 * w}",
    ]
    path = folder / "hostile.py"
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


@settings(deadline=None, max_examples=int(os.environ.get("GRADCHECK_HOSTILE_EXAMPLES", "20")))
@given(
    action=st.sampled_from(list(HOSTILE)),
    when=st.sampled_from(WHEN),
    options=st.lists(st.sampled_from(HOSTILE_OPTIONS), unique=True, max_size=4),
)
def test_whatever_user_code_does_the_exit_code_tells_the_truth(tmp_path_factory, action, when, options):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "elsewhere").mkdir()
    path = _hostile_module(folder, action, when)
    wall = ["--max-seconds=3"] if action == "hang" else []
    command = ["func", "hostile.py:loss", "--grad", "hostile.py:grad_once", "--param", "w=5", *options, *wall]
    result = _gradcheck(*command, cwd=folder, timeout=180)
    expected = HOSTILE[action][1]
    assert result.returncode == expected, (path.read_text(), result.stderr)
    assert "Traceback (most recent call last)" not in result.stderr  # ours; the user's frames are labelled
    if expected == 2:
        assert result.stderr.strip().splitlines()[-1].startswith("Error: "), result.stderr
    if "--json" in options and result.returncode != 2:
        assert json.loads(result.stdout)["status"] == "PASS"
    if "--junit=out.xml" in options and result.returncode != 2:
        assert (folder / "out.xml").is_file()
    assert not any((folder / "elsewhere").iterdir())  # nothing of ours followed the chdir


@settings(deadline=None, max_examples=int(os.environ.get("GRADCHECK_HOSTILE_EXAMPLES", "20")))
@given(
    action=st.sampled_from(list(HOSTILE)),
    when=st.sampled_from(WHEN),
    options=st.lists(
        st.sampled_from(["--json", "-q", "--workers=2", "--junit=out.xml", "--method=forward"]), unique=True, max_size=3
    ),
    keys=st.lists(st.sampled_from(['checkpoint = "run.ckpt"', "timeout = 20", "workers = 2"]), unique=True, max_size=2),
)
def test_in_a_suite_the_other_checks_and_the_reports_survive(tmp_path_factory, action, when, options, keys):
    folder = tmp_path_factory.mktemp("hostile-suite")
    (folder / "elsewhere").mkdir()
    _hostile_module(folder, action, when)
    extra = "".join(f"{key}\n" for key in keys)
    (folder / "suite.toml").write_text(
        '[[check]]\nname = "hostile"\nmodel = "func"\nloss = "hostile.py:loss"\ngrad = "hostile.py:grad_once"\n'
        f'params = {{ w = "5" }}\n{extra}\n[[check]]\nname = "fine"\nmodel = "linreg"\n',
        encoding="utf-8",
    )
    wall = ["--max-seconds=3"] if action == "hang" else []
    result = _gradcheck("run", "suite.toml", *options, *wall, cwd=folder, timeout=180)
    expected = HOSTILE[action][1]
    assert result.returncode == expected, result.stderr
    assert "Traceback (most recent call last)" not in result.stderr
    if "--json" in options:
        statuses = [check["status"] for check in json.loads(result.stdout)["checks"]]
        # exit 2: an ERROR, or INCOMPLETE with the rows finished before --max-seconds stopped it
        assert statuses[0] in (("ERROR", "INCOMPLETE") if expected == 2 else ("PASS",)) and statuses[1] == "PASS"
    if "--junit=out.xml" in options:
        assert (folder / "out.xml").is_file()
    assert not any((folder / "elsewhere").iterdir())

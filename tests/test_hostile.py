"""Hostile input and CI honesty: every bad input is one line on stderr with a documented
exit code, never a traceback of ours; exit 1 means a gradient failed and nothing else."""

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck_cli import InputError, assert_gradients, check_gradients
from gradcheck_cli.cli.main import cli
from gradcheck_cli.core.errors import command_line, option_ref
from gradcheck_cli.core.limits import MAX_SUITE_BYTES
from gradcheck_cli.core.result import EXIT_CODES
from gradcheck_cli.render.report import RichProgress

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = set(EXIT_CODES)

USER = """
import sys
import numpy as np

CALLS = {"n": 0}

def loss(W):
    return float(np.sum(W ** 2))

def grad(W):
    return {"W": 2 * W}

def grad_wrong(W):
    return {"W": 3 * W}

def loss_exit0(W):
    sys.exit(0)

def loss_exit3(W):
    sys.exit(3)

def loss_exit_text(W):
    sys.exit("config missing")

def grad_exit0(W):
    sys.exit(0)

def loss_tuple(W):
    return float(np.sum(W ** 2)), 2 * W

def loss_bool(W):
    return True

def loss_prints(W):
    print("debug: in the loss")
    return float(np.sum(W ** 2))

def loss_raises_later(W):
    CALLS["n"] += 1
    if CALLS["n"] > 3:
        raise ValueError("boom on a later call")
    return float(np.sum(W ** 2))

def loss_offset(W):
    return 1e12 + 1e-6 * float(np.sum(np.sin(W)))

def grad_offset(W):
    return {"W": 1e-6 * np.cos(W)}

def loss_ctrl_c(W):
    CALLS["n"] += 1
    if CALLS["n"] > 5:
        raise KeyboardInterrupt
    return float(np.sum(W ** 2))
"""


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user.py"
    path.write_text(USER)
    return path


def _func(runner, path, loss, grad="grad", *extra):
    return runner.invoke(cli, ["func", f"{path}:{loss}", "--grad", f"{path}:{grad}", "--param", "W=3", *extra])


def _one_error_line(result, exit_code=2):
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


# ---- false green and misleading exit codes ---------------------------------------------------


@pytest.mark.parametrize(
    "loss, grad, shown",
    [
        ("loss_exit0", "grad", "sys.exit(0)"),
        ("loss_exit3", "grad", "sys.exit(3)"),
        ("loss_exit_text", "grad", "sys.exit('config missing')"),
        ("loss", "grad_exit0", "sys.exit(0)"),
    ],
)
def test_sys_exit_in_user_code_is_an_input_error_not_our_exit(runner, user, loss, grad, shown):
    result = _func(runner, user, loss, grad, "-q")
    who = f"{user}:{grad if grad != 'grad' else loss}"
    assert _one_error_line(result) == (
        f"Error: {who} called {shown}; the code under test must return a value, not exit"
    )


def test_sys_exit_at_import_is_an_input_error(runner, tmp_path):
    path = tmp_path / "bye.py"
    path.write_text("import sys\nsys.exit(0)\n")
    result = _func(runner, path, "loss")
    assert _one_error_line(result) == (
        f"Error: importing {path} called sys.exit(0); the code under test must return a value, not exit"
    )


def test_a_loss_returning_loss_and_gradient_is_told_to_return_the_loss(runner, user):
    assert _one_error_line(_func(runner, user, "loss_tuple")) == (
        f"Error: {user}:loss_tuple returned a tuple of 2 at the starting point; return the loss alone (a float), "
        "e.g. 'return loss', not 'return loss, dx', or give --value-and-grad to check the dx it returns"
    )


def test_a_bool_is_not_a_loss(runner, user):
    assert _one_error_line(_func(runner, user, "loss_bool")) == (
        f"Error: {user}:loss_bool returned a bool (True) at the starting point; a bool is not a loss: return a float"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["linreg", "--seed", "-1"], "Error: Invalid value for '--seed': '-1' is not a whole number >= 0"),
        (
            ["mlp", "--layers", "4,8,3", "--mode", "directional", "--directions", "100000000000000000000"],
            "Error: Invalid value for '--directions': 100000000000000000000 directions needs 2.38e+13 GiB of memory; "
            "the limit is 2 GiB: give smaller sizes",
        ),
        (
            ["linreg", "--m", "9223372036854775807"],
            "Error: Invalid value for '--m': linreg with m=9223372036854775807, n=3 needs 6.87e+11 GiB of memory; "
            "the limit is 2 GiB: give smaller sizes",
        ),
        (
            ["linreg", "--n", "9223372036854775807"],
            "Error: Invalid value for '--n': linreg with m=100, n=9223372036854775807 needs 1.39e+13 GiB of memory; "
            "the limit is 2 GiB: give smaller sizes",
        ),
        (
            ["mlp", "--layers", "100000,100000,10"],
            "Error: Invalid value for '--layers': an mlp of layers 100000,100000,10 with m=32 needs 149 GiB of memory; "
            "the limit is 2 GiB: give smaller sizes",
        ),
        (
            ["linreg", "--eps", "1e300"],
            "Error: Invalid value for '--eps': '1e300' is not a relative step in (0, 1]; e.g. auto or 1e-6",
        ),
        (["linreg", "--l2", "inf"], "Error: Invalid value for '--l2': 'inf' is not a finite number >= 0; e.g. 0.1"),
    ],
)
def test_sizes_and_ranges_are_refused_up_front(runner, args, message):
    result = runner.invoke(cli, args)
    assert _one_error_line(result) == message


@pytest.mark.parametrize("flag", ["--engine", "--max-memory"])
def test_linreg_offers_no_engine_options(runner, flag):
    # click words "no such option" differently across versions; the line and the flag are what matter.
    line = _one_error_line(runner.invoke(cli, ["linreg", flag, "10"]))
    assert line.startswith("Error: No such option") and flag in line


def test_a_seed_below_zero_is_refused_in_suites_and_the_api(tmp_path):
    with pytest.raises(InputError, match=r"^seed: -1 is not a whole number >= 0$"):
        check_gradients(lambda p: 0.0, lambda p: {"w": 0 * p["w"]}, {"w": np.ones(2)}, seed=-1)


def test_a_huge_suite_is_refused_before_reading_it(runner, tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text('[[check]]\nname = "a"\nmodel = "mlp"\nlayers = [' + "2, " * (MAX_SUITE_BYTES // 3) + "2]\n")
    assert _one_error_line(runner.invoke(cli, ["run", str(path)])) == (
        f"Error: {path}: the config file is {path.stat().st_size:,} bytes; the limit is {MAX_SUITE_BYTES:,} "
        "(a suite is a short list of checks)"
    )


def test_a_deep_model_in_a_suite_is_refused_with_file_and_line(runner, tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text('[[check]]\nname = "a"\nmodel = "mlp"\nlayers = [' + "2, " * 5000 + "2]\n")
    assert _one_error_line(runner.invoke(cli, ["run", str(path)])) == (
        f"Error: {path}:4: key 'layers' in check 'a': 5000 layers; the limit is 1000"
    )


def test_binary_and_bom_suites(runner, tmp_path):
    binary = tmp_path / "b.toml"
    binary.write_bytes(b'[[check]]\nname = "\xff\xfe"\n')
    assert _one_error_line(runner.invoke(cli, ["run", str(binary)])) == (
        f"Error: {binary}:2: not UTF-8 text (byte 18); a suite is a TOML text file"
    )
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b'\xef\xbb\xbf[[check]]\nname = "a"\nmodel = "linreg"\n')
    result = runner.invoke(cli, ["run", str(bom), "-q"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "target, message",
    [
        ("/dev/full", "'/dev/full' is not a regular file; give a file path, e.g. gradcheck.xml"),
        ("/proc/x.xml", "cannot create '/proc/x.xml' (No such file or directory); give a path in a writable folder"),
    ],
)
def test_junit_targets_that_cannot_be_written_are_refused_before_the_check(runner, target, message):
    if not Path(target).parent.exists():
        pytest.skip(f"{Path(target).parent} does not exist on this system")
    result = runner.invoke(cli, ["linreg", "--junit", target])
    assert _one_error_line(result) == f"Error: Invalid value for '--junit': {message}"


def test_a_link_to_a_file_not_there_yet_is_followed_deliberately(runner, tmp_path):
    link = tmp_path / "report.xml"
    link.symlink_to("reports-today.xml")  # relative, as ln -s makes it
    assert runner.invoke(cli, ["linreg", "--junit", str(link)]).exit_code == 0
    assert link.is_symlink() and ET.parse(tmp_path / "reports-today.xml").getroot().tag == "testsuites"
    nowhere = tmp_path / "deep.xml"
    nowhere.symlink_to("missing/report.xml")
    assert _one_error_line(runner.invoke(cli, ["linreg", "--junit", str(nowhere)])) == (
        f"Error: Invalid value for '--junit': {str(nowhere)!r} links to {os.path.realpath(tmp_path / 'missing' / 'report.xml')!r}, "
        "whose folder does not exist; make the folder, or give another path"
    )
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert _one_error_line(runner.invoke(cli, ["linreg", "--junit", str(loop)])) == (
        f"Error: Invalid value for '--junit': {str(loop)!r} is a loop of symbolic links; give a file path"
    )


def test_junit_refuses_to_overwrite_a_file_that_is_not_a_report(runner, tmp_path):
    suite = tmp_path / "mine.toml"
    suite.write_text('[[check]]\nname = "a"\nmodel = "linreg"\n')
    result = runner.invoke(cli, ["run", str(suite), "--junit", str(suite)])
    assert _one_error_line(result) == (
        f"Error: Invalid value for '--junit': {str(suite)!r} exists and is not a JUnit report; give a new path, "
        "or --overwrite to replace it"
    )
    assert suite.read_text().startswith("[[check]]")
    report = tmp_path / "old.xml"
    assert runner.invoke(cli, ["linreg", "--junit", str(report)]).exit_code == 0
    assert runner.invoke(cli, ["linreg", "--junit", str(report)]).exit_code == 0  # a report: replaced
    loose = tmp_path / "notes.txt"
    loose.write_text("keep me")
    assert runner.invoke(cli, ["linreg", "--junit", str(loose), "--overwrite"]).exit_code == 0
    assert ET.parse(loose).getroot().tag == "testsuites"


def test_an_empty_parameter_is_an_input_error(runner, user, tmp_path):
    init = tmp_path / "empty.npz"
    np.savez(init, W=np.zeros(0))
    result = runner.invoke(cli, ["func", f"{user}:loss", "--grad", f"{user}:grad", "--init", str(init)])
    assert _one_error_line(result) == (
        "Error: Invalid value for '--param': parameter W has no entries (shape (0,)); every parameter needs at "
        "least one"
    )


def test_a_closed_pipe_keeps_the_verdict_and_prints_nothing_on_stderr():
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "run", str(ROOT / "configs" / "ci.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read()
    process.wait(timeout=120)
    assert first.startswith(b"mlp 4-8-3")
    assert process.returncode == 0 and stderr == b""


def test_exit_codes_each_row(runner, user):
    assert _func(runner, user, "loss", "grad", "-q").exit_code == 0
    assert _func(runner, user, "loss", "grad_wrong", "-q").exit_code == 1
    assert _func(runner, user, "nothere", "grad", "-q").exit_code == 2
    # 1e12 + small: round-off far above the derivative, so the check cannot tell.
    assert _func(runner, user, "loss_offset", "grad_offset", "-q").exit_code == 3
    assert _func(runner, user, "loss_offset", "grad_offset", "-q", "--allow-unresolved").exit_code == 0
    assert _func(runner, user, "loss_ctrl_c", "grad", "-q").exit_code == 130


# ---- inputs that hang or mislead --------------------------------------------------------------


def test_user_prints_do_not_spoil_json(runner, user):
    result = _func(runner, user, "loss_prints", "grad", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "PASS"
    assert "debug: in the loss" not in result.stdout  # sent to stderr


def test_unicode_identifiers_are_accepted(runner, tmp_path):
    path = tmp_path / "lössé.py"
    path.write_text(
        "import numpy as np\ndef lössfn(Wα):\n    return float(np.sum(Wα ** 2))\n"
        "def grad(Wα):\n    return {'Wα': 2 * Wα}\n"
    )
    result = runner.invoke(cli, ["func", f"{path}:lössfn", "--grad", f"{path}:grad", "--param", "Wα=3", "-q"])
    assert result.exit_code == 0, result.output


def test_init_files(runner, user, tmp_path):
    single = tmp_path / "w.npy"
    np.save(single, np.ones(3))
    ok = runner.invoke(
        cli, ["func", f"{user}:loss", "--grad", f"{user}:grad", "--param", "W=3", "--init", str(single), "-q"]
    )
    assert ok.exit_code == 0, ok.output
    script = tmp_path / "x.py"
    script.write_text("print(1)\n")
    cases = [
        (
            "/dev/null",
            "'/dev/null' is not a regular file; give an .npz written by numpy.savez (one array per "
            "parameter) or, for one parameter, an .npy",
        ),
        (
            str(script),
            f"{script} is not a numpy .npz or .npy file; give an .npz written by numpy.savez (one array "
            f"per parameter) or, for one parameter, an .npy",
        ),
    ]
    complex_init = tmp_path / "c.npz"
    np.savez(complex_init, W=np.ones(3) * (1 + 1j))
    cases.append((str(complex_init), f"array W in {complex_init} is complex; parameters must be real numbers"))
    for init, message in cases:
        result = runner.invoke(
            cli, ["func", f"{user}:loss", "--grad", f"{user}:grad", "--param", "W=3", "--init", init]
        )
        assert _one_error_line(result) == f"Error: Invalid value for '--init': {message}"


def test_complex_parameters_are_refused_by_the_api():
    with pytest.raises(InputError, match=r"^params: parameter w is complex; parameters must be real numbers$"):
        check_gradients(lambda p: 0.0, lambda p: {"w": p["w"]}, {"w": np.ones(2) * 1j})


def test_an_error_at_import_shows_the_users_file_and_line(runner, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\n\ndef helper():\n    return 1 / 0\n\nhelper()\n")
    result = _func(runner, bad, "loss")
    assert result.exit_code == 2
    assert f'File "{bad}", line 6' in result.stderr and f'File "{bad}", line 4' in result.stderr
    assert "frozen" not in result.stderr and "gradcheck_cli" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == f"Error: importing {bad} raised ZeroDivisionError: division by zero"
    )
    syntax = tmp_path / "syn.py"
    syntax.write_text("def f(W)\n    return 1\n")
    result = _func(runner, syntax, "f")
    assert f'File "{syntax}", line 1' in result.stderr and "frozen" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: importing {syntax} raised SyntaxError: expected ':' (syn.py, line 1)"
    )


def test_module_targets_with_relative_imports(runner, tmp_path, monkeypatch):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("import numpy as np\ndef sq(W):\n    return float(np.sum(W ** 2))\n")
    (package / "model.py").write_text(
        "from .helper import sq\ndef loss(W):\n    return sq(W)\ndef grad(W):\n    return {'W': 2 * W}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["func", "mypkg.model:loss", "--grad", "mypkg.model:grad", "--param", "W=3", "-q"])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(cli, ["func", "nopkg.model:loss", "--grad", "nopkg.model:grad", "--param", "W=3"])
    assert _one_error_line(missing) == (
        "Error: Invalid value for 'FILE.py:FUNCTION': no module 'nopkg.model' (from the working folder or installed); "
        "give FILE.py:FUNCTION or MODULE:FUNCTION"
    )


def test_the_library_names_its_keywords_not_the_flags():
    def loss(p):
        return float(np.sum(np.sin(p["w"])))

    def grad(p):
        return {"w": np.cos(p["w"])}

    with pytest.raises(InputError) as info:
        check_gradients(loss, grad, {"w": np.ones(50)}, max_seconds=1e-9)
    text = str(info.value)
    assert "--" not in text
    assert text.endswith(
        "check a part (mode='sample' or mode='directional'), spread it (more workers, or dask), "
        "raise max_seconds, or give force=True"
    )
    with pytest.raises(InputError) as info:
        check_gradients(loss, grad, {"w": np.ones(2)}, _runner=None, metod="central")
    assert "_runner" not in str(info.value) and "_probe_factory" not in str(info.value)


def test_an_error_spells_the_options_it_names_for_each_front_end():
    error = InputError(
        f"give {option_ref('mode', 'sample')} or {option_ref('force', True)}; raise {option_ref('max_seconds')}"
    )
    assert str(error) == "give mode='sample' or force=True; raise max_seconds"
    assert command_line(error) == "give --mode sample or --force; raise --max-seconds"


def test_api_errors_are_library_errors_with_the_cli_words():
    with pytest.raises(InputError, match=r"^unknown option 'metod'; valid: method, mode"):
        check_gradients(lambda p: 0.0, lambda p: {"w": 0 * p["w"]}, {"w": np.ones(2)}, metod="central")
    with pytest.raises(InputError, match=r"^samples: 2.5 is not a whole number >= 1$"):
        check_gradients(lambda p: 0.0, lambda p: {"w": 0 * p["w"]}, {"w": np.ones(2)}, samples=2.5)


# ---- suites that keep their results -----------------------------------------------------------


def _suite(tmp_path, user, body):
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(body).replace("USER", str(user)))
    return path


THREE = """
[[check]]
name = "first"
model = "linreg"

[[check]]
name = "second"
model = "func"
loss = "USER:LOSS2"
grad = "USER:grad"
params = { W = "3" }

[[check]]
name = "third"
model = "mlp"
layers = [3, 4, 2]
"""


def test_a_suite_is_validated_before_any_check_runs(runner, tmp_path, user):
    path = _suite(tmp_path, user, THREE.replace("LOSS2", "nothere"))
    result = runner.invoke(cli, ["run", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"Error: {path}:9: key 'loss' in check 'second': {user} has no function 'nothere'; functions defined there:"
    )


def test_a_check_that_errors_does_not_lose_the_others(runner, tmp_path, user):
    path = _suite(tmp_path, user, THREE.replace("LOSS2", "loss_raises_later"))
    junit = tmp_path / "out.xml"
    result = runner.invoke(cli, ["run", str(path), "--junit", str(junit), "-q"])
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS  first: 1 parameter, 0 failed")
    assert lines[1] == f"ERROR  second: {user}:loss_raises_later raised ValueError: boom on a later call"
    assert lines[2].startswith("PASS  third: 4 parameters, 0 failed")
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0" and root.get("tests") == "6"
    data = json.loads(runner.invoke(cli, ["run", str(path), "--json"]).stdout)
    assert data["error_checks"] == ["second"] and data["exit_code"] == 2
    assert [c["status"] for c in data["checks"]] == ["PASS", "ERROR", "PASS"]


def test_ctrl_c_in_a_suite_keeps_what_finished(runner, tmp_path, user):
    path = _suite(tmp_path, user, THREE.replace("LOSS2", "loss_ctrl_c"))
    junit = tmp_path / "out.xml"
    result = runner.invoke(cli, ["run", str(path), "--junit", str(junit)])
    assert result.exit_code == 130
    assert "first" in result.stdout and "INCOMPLETE" in result.stdout and "NOT RUN" in result.stdout
    assert "not checked (interrupted): W" in result.stdout
    root = ET.parse(junit).getroot()
    assert root.get("skipped") == "2"  # W of 'second', and 'third'
    assert [s.get("name") for s in root.findall("testsuite")] == ["first", "second", "third"]


def test_ctrl_c_in_a_single_check_shows_the_rows_done(runner, tmp_path):
    path = tmp_path / "two.py"
    path.write_text(
        textwrap.dedent("""
        import numpy as np
        START = {}
        def loss(a, b):
            START.setdefault("b", b.copy())
            if not np.array_equal(b, START["b"]):  # Ctrl-C once b's turn comes: a is done
                raise KeyboardInterrupt
            return float(np.sum(a ** 2) + np.sum(b ** 2))
        def grad(a, b):
            return {"a": 2 * a, "b": 2 * b}
    """)
    )
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--param", "a=", "--param", "b=3"])
    assert result.exit_code == 130
    assert "not checked (interrupted): b" in result.stdout
    assert "INCOMPLETE  1 of 2 parameters (interrupted)" in result.stdout


def test_only_and_overrides(runner, tmp_path, user):
    path = _suite(tmp_path, user, THREE.replace("LOSS2", "loss"))
    data = json.loads(
        runner.invoke(cli, ["run", str(path), "-k", "ir", "--seed", "7", "--method", "richardson", "--json"]).stdout
    )
    assert [c["name"] for c in data["checks"]] == ["first", "third"]
    assert {c["settings"]["seed"] for c in data["checks"]} == {7}
    assert {c["settings"]["method"] for c in data["checks"]} == {"richardson"}
    result = runner.invoke(cli, ["run", str(path), "-k", "zzz"])
    assert _one_error_line(result) == (
        "Error: Invalid value for '-k' / '--only': no check name contains 'zzz'; the checks are first, second, third"
    )


def test_control_characters_in_names_make_well_formed_junit(runner, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[check]]\nname = "bad\\u0001name"\nmodel = "linreg"\n')
    junit = tmp_path / "out.xml"
    assert runner.invoke(cli, ["run", str(path), "--junit", str(junit), "-q"]).exit_code == 0
    assert ET.parse(junit).getroot().find("testsuite").get("name") == "bad\\x01name"


# ---- output -----------------------------------------------------------------------------------


def test_piped_output_is_plain_lines(runner):
    result = runner.invoke(cli, ["linreg"])
    lines = result.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines)
    verdict = [line for line in lines if line.startswith("PASS  ")]
    assert len(verdict) == 1 and verdict[0].endswith(" s") and "1 parameter," in verdict[0]


def test_progress_names_check_parameter_position_and_eta():
    import io

    from rich.console import Console

    from gradcheck_cli import check_model
    from gradcheck_cli.models import MLP, MLPSpec

    buffer = io.StringIO()
    sink = RichProgress(Console(file=buffer, force_terminal=True, width=140), delay=0.0, label="my-check")
    check_model(MLP(MLPSpec.build([30, 20, 5], m=16)), engine="loop", progress=sink)
    out = buffer.getvalue()
    assert "my-check: W1 (1 of 4)" in out and "eta" in out


def test_assert_gradients_hides_its_frame_and_names_the_check():
    assert assert_gradients.__wrapped__.__code__.co_varnames[0] == "loss"
    source = Path(sys.modules["gradcheck_cli.checks.testing"].__file__).read_text(encoding="utf-8")
    assert "__tracebackhide__ = True" in source
    with pytest.raises(AssertionError, match=r"^gradient check 'my layer' failed"):
        assert_gradients(
            lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 3 * p["w"]}, {"w": np.ones(3)}, name="my layer"
        )


def test_help_shows_defaults_and_suite_keys(runner):
    help_text = " ".join(runner.invoke(cli, ["mlp", "--help"]).output.split())
    assert "1e-06 float64; 0.0001 float64 forward; 0.001 float32" in help_text
    assert "[default: central]" in help_text and "tanh)]" in help_text and "512)]" in help_text
    run_help = runner.invoke(cli, ["run", "--help"]).output
    assert "Suite keys" in run_help and "max_memory" in run_help and "params" in run_help


def test_verdicts_do_not_depend_on_blas_threads():
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, "-m", "gradcheck_cli", "mlp", "--layers", "20,16,4", "--m", "64", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        outputs.append(json.loads(out.stdout))
    a, b = outputs
    assert [p["status"] for p in a["parameters"]] == [p["status"] for p in b["parameters"]]
    assert a["status"] == b["status"] and a["exit_code"] == b["exit_code"]


# ---- generated hostile input ------------------------------------------------------------------

TOKENS = [
    "mlp",
    "linreg",
    "func",
    "run",
    "expr",
    "sum(X**2)",
    "X=2*X",
    "X=__import__('os')",
    "--shape",
    "X=3",
    "--explain",
    "--hessp",
    "--deriv",
    "--deriv2",
    "--value-and-grad",
    "--layers",
    "4,8,3",
    "--m",
    "--n",
    "--l2",
    "--eps",
    "--rtol",
    "--atol",
    "--seed",
    "--method",
    "--mode",
    "--dtype",
    "--samples",
    "--directions",
    "--taylor",
    "--json",
    "-q",
    "--junit",
    "--activation",
    "--activations",
    "--loss",
    "--engine",
    "--max-memory",
    "--param",
    "--grad",
    "--init",
    "zoo",
    "sweep",
    "--vjp",
    "--jvp",
    "--jac",
    "--hess",
    "--hvp",
    "--data",
    "--const",
    "--dout",
    "--sparsity",
    "--explain",
    "--points",
    "examples/layers.py:relu_forward",
    "examples/layers.py:relu_backward",
    "examples/least_squares.py:convection",
    "x=3x2",
    "stride=1",
    "a={",
    "-k",
    "-1",
    "0",
    "1e300",
    "nan",
    "inf",
    "abc",
    "relu",
    "x.py:f",
    "W=3",
    "",
    "3",
    "2.5",
    "9223372036854775807",
    "central",
    "complex",
    "float32",
    "directional",
    "/dev/null",
    "/nonexistent/x",
    "configs/ci.toml",
    "--help",
]


def _sane(result):
    assert result.exit_code in DOCUMENTED, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr


@settings(
    deadline=None,
    max_examples=int(os.environ.get("GRADCHECK_FUZZ_EXAMPLES", "80")),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=7))
def test_random_argument_lists_get_documented_exit_codes(args):
    from click.testing import CliRunner

    if args[:1] == ["run"] and "configs/ci.toml" in args and "--help" not in args:
        args = [a for a in args if a != "configs/ci.toml"]  # the full CI suite is slow; its path still appears
    _sane(CliRunner().invoke(cli, args))


TOML_VALUES = st.one_of(
    st.integers(-5, 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(-2, 6), max_size=4),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if np.isnan(v) else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(x)}" for k, x in v.items()) + "}"
    return str(v)


KEYS = [
    "layers",
    "m",
    "n",
    "l2",
    "eps",
    "rtol",
    "atol",
    "seed",
    "method",
    "mode",
    "dtype",
    "samples",
    "directions",
    "taylor",
    "activation",
    "activations",
    "loss",
    "bias",
    "engine",
    "max_memory",
    "grad",
    "params",
    "init",
    "vjp",
    "jac",
    "hess",
    "data",
    "const",
    "dout",
    "sparsity",
    "hessp",
    "deriv",
    "deriv2",
    "value_and_grad",
    "shape",
    "lyers",
]


@settings(
    deadline=None,
    max_examples=int(os.environ.get("GRADCHECK_FUZZ_EXAMPLES", "80")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    model=st.sampled_from(["mlp", "linreg", "func", "expr", "cnn"]),
    entries=st.dictionaries(st.sampled_from(KEYS), TOML_VALUES, max_size=4),
    garbage=st.sampled_from(["", "\n[[check]]\n", "\x00", "= =", "[[check]]\nname = 1\n"]),
)
def test_random_suites_get_documented_exit_codes(tmp_path_factory, model, entries, garbage):
    from click.testing import CliRunner

    body = f'[[check]]\nname = "c"\nmodel = "{model}"\n'
    if model == "mlp" and "layers" not in entries:
        body += "layers = [2, 3, 2]\n"
    body += "".join(f"{k} = {_toml_value(v)}\n" for k, v in entries.items()) + garbage
    path = tmp_path_factory.mktemp("suite") / "s.toml"
    path.write_text(body, encoding="utf-8")
    _sane(CliRunner().invoke(cli, ["run", str(path), "-q"]))


def test_prints_at_import_do_not_spoil_json(runner, tmp_path):
    path = tmp_path / "noisy.py"
    path.write_text(
        "import numpy as np\nprint('importing noisy')\ndef loss(W):\n    return float(np.sum(W ** 2))\n"
        "def grad(W):\n    return {'W': 2 * W}\n"
    )
    result = _func(runner, path, "loss", "grad", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["passed"] is True
    assert "importing noisy" not in result.stdout  # sent to stderr

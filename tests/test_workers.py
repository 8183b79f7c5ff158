"""Where evaluations run: worker processes, Dask, checkpoints, the time guard, timeouts.

The user code is ``tests/workload.py``, imported by path in every process; what it
does in a worker (hang, exit, raise) is steered by environment variables, which
spawned workers inherit.
"""

import base64
import gc
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from gradcheck_cli import InputError, UserCodeError, check_gradients
from gradcheck_cli.checks.userfunc import FuncSpec, check_function
from gradcheck_cli.cli.main import cli
from gradcheck_cli.core.errors import CheckInterrupted
from gradcheck_cli.core.options import Execution
from gradcheck_cli.execution import workers
from gradcheck_cli.execution.checkpoint import Checkpoint
from gradcheck_cli.execution.evaluation import Job, Moves, ScalarReader
from gradcheck_cli.execution.workers import LocalWorkers, open_runner
from gradcheck_cli.render.report import RichProgress

pytestmark = pytest.mark.slow  # worker processes and Dask clusters

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = Path(__file__).resolve().with_name("workload.py")
CI_SUITE = ROOT / "configs" / "ci.toml"


def _spec(grad: str = "grad", size: int = 12) -> FuncSpec:
    return FuncSpec(loss=f"{WORKLOAD}:loss", grad=f"{WORKLOAD}:{grad}", params=(("w", (size,)),), seed=3)


def _same(report: dict) -> dict:
    """A report without what differs between two runs of one check: the clock (and the
    note of a run resumed from a checkpoint)."""
    if isinstance(report, dict):
        same = {k: _same(v) for k, v in report.items() if k != "elapsed_seconds"}
        if "notes" in same:  # a resumed run says so; that is all it may add
            same["notes"] = [n for n in same["notes"] if not n.startswith("resumed: ")]
        return same
    if isinstance(report, list):
        return [_same(v) for v in report]
    return report


@pytest.fixture
def clean_env(monkeypatch):
    for name in [k for k in os.environ if k.startswith("WORKLOAD_")]:
        monkeypatch.delenv(name)
    return monkeypatch


# ---- the same report, wherever it runs -------------------------------------------------------


@pytest.mark.parametrize("grad", ["grad", "wrong_grad"])
def test_two_workers_give_the_serial_report_bit_for_bit(clean_env, grad):
    serial = check_function(_spec(grad))
    parallel = check_function(_spec(grad), execution=Execution(workers=2))
    assert serial.exit_code == (0 if grad == "grad" else 1)
    assert _same(parallel.to_dict()) == _same(serial.to_dict())


def test_every_kind_of_check_in_the_ci_suite_gives_the_serial_report_on_two_workers(runner, clean_env):
    # grad, vjp (with constants), jvp, grad with data, a sparse Jacobian, a Hessian
    # against a gradient, HVPs from second differences, and linreg's loop engine.
    serial = runner.invoke(cli, ["run", str(CI_SUITE), "--json"])
    parallel = runner.invoke(cli, ["run", str(CI_SUITE), "--json", "--workers", "2"])
    assert serial.exit_code == 0, serial.output
    assert parallel.exit_code == 0, parallel.output
    assert _same(json.loads(parallel.stdout)) == _same(json.loads(serial.stdout))


def test_the_built_in_loop_engine_with_kinks_on_two_workers(runner):
    args = ["mlp", "--layers", "3,5,2", "--activation", "relu", "--engine", "loop", "--json"]
    serial = runner.invoke(cli, args)
    parallel = runner.invoke(cli, [*args, "--workers", "2"])
    assert serial.exit_code == 0, serial.output
    assert _same(json.loads(parallel.stdout)) == _same(json.loads(serial.stdout))


def test_results_come_back_in_the_order_of_the_moves_whatever_the_chunks():
    job_params = {"x": np.arange(6.0)}
    moves = Moves.entries("x", np.arange(6), np.full(6, 0.5))
    runner = LocalWorkers(2)
    runner.observe(1e-9)  # tiny chunks: many of them, finishing in any order
    job = Job(_sum_of_squares, job_params, ScalarReader("sum"))
    with runner:
        out = runner.run(job, moves)
    expected = [np.sum(job_params["x"] ** 2) + (i + 0.5) ** 2 - i**2 for i in range(6)]
    np.testing.assert_array_equal(out["value"], expected)


def _sum_of_squares(p):
    return float(np.sum(p["x"] ** 2))


class _Power:
    def __init__(self, k):
        self.k = k

    def __call__(self, p):
        return float(np.sum(p["x"] ** self.k))


@pytest.mark.parametrize("make", [lambda: LocalWorkers(1), lambda: open_runner()], ids=["workers", "in-process"])
def test_a_runner_keeps_the_jobs_it_has_seen_alive(make):
    # Jobs come and go within one check (a Hessian's gradient check, then its vector
    # function).  Were a finished job freed, the next could take its id() and be
    # served the old job's pickled function and state.
    moves = Moves.entries("x", np.array([0]), np.array([1.0]))
    with make() as runner:
        job = Job(_Power(2), {"x": np.array([1.0, 2.0])}, ScalarReader("power"))
        assert runner.run(job, moves)["value"][0] == 8.0
        seen = weakref.ref(job)
        del job
        gc.collect()
        assert seen() is not None


def test_a_lambda_cannot_go_to_workers_and_says_what_would(clean_env):
    params = {"w": np.ones(3)}
    with pytest.raises(InputError) as info:
        check_gradients(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p["w"]}, params, workers=2)
    assert "cannot be sent to worker processes" in str(info.value)
    assert "define it at a module's top level" in str(info.value)


# ---- user code that misbehaves in a worker ---------------------------------------------------


W = str(WORKLOAD)
FUNC = ["func", f"{W}:loss", "--grad", f"{W}:grad", "--param", "w=10"]


def test_an_evaluation_that_never_returns_is_stopped_and_named(runner, clean_env):
    clean_env.setenv("WORKLOAD_IN_WORKER", "hang")
    result = runner.invoke(cli, [*FUNC, "--timeout", "0.5"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {W}:loss did not return within the timeout of 0.5 s with w[0] moved, and was stopped; "
        f"make it return, or give a larger timeout"
    )


SLOW_IMPORT = """
import multiprocessing
import os
import time

import numpy as np

# Slow to import in a worker process (a heavy library, say); not in the supervised
# process that runs the check, which leads a process group of its own.
if multiprocessing.parent_process() is not None and os.getpgid(0) != os.getpid():
    time.sleep({seconds})


def loss(w):
    return float(np.sum(np.sin(w)))


def grad(w):
    return {{"w": np.cos(w)}}
"""


def test_a_slow_import_is_not_an_evaluation_the_timeout_starts_after_it(runner, tmp_path):
    # A worker's start and the user's import come before any evaluation: a quick correct
    # loss passes with --timeout 1 however long they take (within their own allowance).
    path = tmp_path / "slow_import.py"
    path.write_text(SLOW_IMPORT.format(seconds=1.5))
    result = runner.invoke(cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--param", "w=6", "--timeout", "1"])
    assert result.exit_code == 0, result.stderr
    assert "PASS" in result.stdout


def test_an_import_past_its_own_allowance_is_stopped_and_named(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "LOAD_SECONDS", 0.5)
    path = tmp_path / "slow_import.py"
    path.write_text(SLOW_IMPORT.format(seconds=30))
    result = runner.invoke(
        cli, ["func", f"{path}:loss", "--grad", f"{path}:grad", "--param", "w=6", "--timeout", "0.2"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {path}:loss was still being imported after 0.5 s (the allowance for loading the code under "
        f"test), and was stopped; make importing it quicker"
    )


def test_user_code_that_ends_its_worker_is_named_not_a_crash(runner, clean_env):
    clean_env.setenv("WORKLOAD_IN_WORKER", "exit")
    result = runner.invoke(cli, [*FUNC, "--workers", "2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {W}:loss ended its worker process (exit code 3) with w[0] moved; "
        f"the code under test must return a value, not exit or crash"
    )


def test_an_exception_in_a_worker_shows_the_users_traceback_and_one_line(runner, clean_env):
    clean_env.setenv("WORKLOAD_IN_WORKER", "raise")
    result = runner.invoke(cli, [*FUNC, "--workers", "2"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Traceback (user code, most recent call last):"
    assert "workload.py" in lines[1] and "in loss" in lines[1]
    assert lines[-1] == f"Error: {W}:loss raised ValueError: not in a worker, please"
    assert "gradcheck_cli" not in result.stderr


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--workers", "0", "'0' is not a whole number >= 1 or auto"),
        ("--workers", "many", "'many' is not a whole number >= 1 or auto"),
        ("--timeout", "0", "'0' is not a finite number > 0; e.g. 30"),
        ("--dask", "local:0", "'local:0' is not a scheduler address or local:N (N >= 1)"),
        ("--max-seconds", "-1", "'-1' is not a finite number > 0; e.g. 3600"),
    ],
)
def test_malformed_execution_options_are_one_line(runner, option, value, message):
    result = runner.invoke(cli, [*FUNC, option, value])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: Invalid value for '{option}': {message}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_timeout_cannot_end_a_dask_task_and_says_so(runner):
    result = runner.invoke(cli, [*FUNC, "--dask", "local:1", "--timeout", "5"])
    assert result.exit_code == 2
    assert "use the timeout with workers, or drop it" in result.stderr


def test_without_dask_installed_dask_says_how_to_install_it(runner, monkeypatch):
    real = importlib.import_module

    def missing(name, *args):
        if name == "distributed":
            raise ImportError("No module named 'distributed'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    result = runner.invoke(cli, [*FUNC, "--dask", "local:2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: Invalid value for '--dask': running on Dask needs dask.distributed, which is not installed; "
        "install it with pip install 'gradcheck-cli[dask]'"
    )


# ---- the time guard --------------------------------------------------------------------------


def test_the_guard_refuses_an_over_budget_check_with_its_estimate(runner, clean_env):
    clean_env.setenv("WORKLOAD_SLEEP", "0.02")
    result = runner.invoke(cli, [*FUNC[:-1], "w=200", "--max-seconds", "1"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("Error: the check would take about ")
    assert "on 1 process" in line and "evaluations of" in line
    for alternative in ("--mode sample", "--mode directional", "--workers", "--dask", "--force"):
        assert alternative in line


def test_force_runs_a_check_the_guard_would_refuse(runner, clean_env):
    refused = runner.invoke(cli, [*FUNC, "--max-seconds", "1e-9"])
    forced = runner.invoke(cli, [*FUNC, "--max-seconds", "1e-9", "--force"])
    assert refused.exit_code == 2
    assert forced.exit_code == 0, forced.output


def test_the_estimate_counts_the_workers(clean_env):
    runner = LocalWorkers(4)
    runner.observe(0.5)
    assert runner.estimate(100) == pytest.approx(12.5)
    assert runner.describe() == "4 worker processes"


# ---- checkpoints -----------------------------------------------------------------------------


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_an_interrupted_check_resumes_from_its_checkpoint_without_evaluating_again(tmp_path, clean_env):
    counter = tmp_path / "calls"
    clean_env.setenv("WORKLOAD_COUNT", str(counter))
    whole = check_function(_spec(size=40))
    total = _count(counter)
    assert total == whole.evaluations

    checkpoint = tmp_path / "check.ckpt"
    counter.unlink()
    # Interrupted in the second batch of moves (the -h side): the first is recorded.
    clean_env.setenv("WORKLOAD_INTERRUPT_AT", str(60))
    with pytest.raises(CheckInterrupted):
        check_function(_spec(size=40), execution=Execution(checkpoint=str(checkpoint)))
    first = _count(counter)
    clean_env.delenv("WORKLOAD_INTERRUPT_AT")
    counter.unlink()

    recorded = sum(int(json.loads(line.split("\t")[0])["n"]) for line in checkpoint.read_text().splitlines()[1:])
    assert 0 < recorded < first
    resumed = check_function(_spec(size=40), execution=Execution(checkpoint=str(checkpoint)))
    (note,) = resumed.notes  # the only difference: it says it resumed
    assert note.startswith(f"resumed: {recorded:,} of ")
    assert _same({**resumed.to_dict(), "notes": []}) == _same(whole.to_dict())
    # Only the starting point (twice: the determinism check) and unrecorded moves again.
    assert _count(counter) == total - recorded


def test_the_command_line_resumes_after_ctrl_c_with_exit_130(runner, tmp_path, clean_env):
    checkpoint = tmp_path / "run.ckpt"
    args = [*FUNC, "--checkpoint", str(checkpoint), "--json"]
    clean_env.setenv("WORKLOAD_COUNT", str(tmp_path / "calls"))
    clean_env.setenv("WORKLOAD_INTERRUPT_AT", "25")
    interrupted = runner.invoke(cli, args)
    assert interrupted.exit_code == 130
    assert json.loads(interrupted.stdout)["status"] == "INCOMPLETE"
    clean_env.delenv("WORKLOAD_INTERRUPT_AT")
    resumed = runner.invoke(cli, args)
    whole = runner.invoke(cli, FUNC + ["--json"])
    assert resumed.exit_code == 0
    assert _same(json.loads(resumed.stdout)) == _same(json.loads(whole.stdout))


def test_a_checkpoint_from_another_check_is_refused(runner, tmp_path, clean_env):
    checkpoint = tmp_path / "run.ckpt"
    assert runner.invoke(cli, [*FUNC, "--checkpoint", str(checkpoint)]).exit_code == 0
    other = runner.invoke(cli, [*FUNC, "--checkpoint", str(checkpoint), "--seed", "7"])
    assert other.exit_code == 2
    assert other.stderr.strip() == (
        f"Error: Invalid value for '--checkpoint': {str(checkpoint)!r} was written by a different check (another function, "
        f"parameters or settings); give a new file, or delete it to start over"
    )


def test_a_file_that_is_no_checkpoint_is_refused(runner, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n")
    result = runner.invoke(cli, [*FUNC, "--checkpoint", str(path)])
    assert result.exit_code == 2
    assert "is not a gradcheck checkpoint" in result.stderr
    assert path.read_text() == "shopping list\n"


def _float32(item: list) -> list:
    raw = np.frombuffer(base64.b64decode(item[2]), dtype=item[0]).astype(np.float32)
    return ["float32", item[1], base64.b64encode(raw.tobytes()).decode()]


CRAFTED = {
    # name: (change to the first record's payload, what the refusal says)
    "position-not-a-number": (
        lambda p: p | {"at": "zero"},
        "is no record gradcheck writes (its position, count or digest is missing or not what gradcheck writes)",
    ),
    "no-result": (lambda p: {k: v for k, v in p.items() if k != "result"}, "(its result is not a table of arrays)"),
    "object-dtype": (
        lambda p: p | {"result": p["result"] | {"value": ["object", [1], "AAAAAAAAAAA="]}},
        "(value is not an array of numbers (object, shape [1]))",
    ),
    "bytes-not-the-shape": (
        lambda p: p | {"result": p["result"] | {"value": ["float64", [1000], p["result"]["value"][2]]}},
        "bytes, not the float64 array of shape [1000])",
    ),
    "not-base64": (
        lambda p: p | {"result": p["result"] | {"value": ["float64", [1], "!!!!"]}},
        "is no record gradcheck writes (value is not base64 text)",
    ),
    "other-names": (
        lambda p: p | {"result": {"values" if k == "value" else k: v for k, v in p["result"].items()}},
        "holds, at evaluation 0, arrays other than this check's (value)",
    ),
    "other-dtype": (
        lambda p: p | {"result": p["result"] | {"value": _float32(p["result"]["value"])}},
        "holds, at evaluation 0, arrays other than this check's (value)",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_record_is_refused_in_one_line(case, runner, tmp_path):
    """A record whose checksum holds but whose content is not one gradcheck wrote."""
    checkpoint = tmp_path / "run.ckpt"
    assert runner.invoke(cli, [*FUNC, "--checkpoint", str(checkpoint)]).exit_code == 0
    lines = checkpoint.read_text().splitlines(keepends=True)
    change, said = CRAFTED[case]
    text = json.dumps(change(json.loads(lines[1].split("\t")[0])), separators=(",", ":"))
    lines[1] = f"{text}\t{zlib.crc32(text.encode()):08x}\n"
    checkpoint.write_text("".join(lines))
    result = runner.invoke(cli, [*FUNC, "--checkpoint", str(checkpoint)])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.stderr
    assert line.startswith(f"Error: Invalid value for '--checkpoint': {str(checkpoint)!r} ")
    assert said in line and line.endswith("; give a new file, or delete it to start over")


def test_a_partial_last_record_is_dropped_and_the_rest_kept(tmp_path):
    path = tmp_path / "c.ckpt"
    record = Checkpoint(path, "abc")
    record.record(0, 2, "m1", {"value": np.array([1.0, 2.0])})
    record.record(2, 1, "m2", {"value": np.array([np.pi])})
    record.close()
    text = path.read_bytes()
    path.write_bytes(text[:-7])  # a crash in the middle of the second record
    again = Checkpoint(path, "abc")
    assert list(again.records) == [0]
    np.testing.assert_array_equal(again.records[0][2]["value"], [1.0, 2.0])
    again.record(2, 1, "m2", {"value": np.array([np.pi])})
    again.close()
    third = Checkpoint(path, "abc")
    assert third.records[2][2]["value"][0] == np.pi  # exact bits, not decimal text
    third.close()


def test_a_record_that_does_not_match_the_moves_is_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    with open_runner(checkpoint=path, digest="d") as runner:
        runner.run(_job(), Moves.entries("x", np.arange(3), np.full(3, 0.1)))
    with open_runner(checkpoint=path, digest="d") as runner, pytest.raises(InputError) as info:
        runner.run(_job(), Moves.entries("x", np.arange(3), np.full(3, 0.2)))
    assert "does not match this run at evaluation 0" in str(info.value)


def _job():
    return Job(_sum_of_squares, {"x": np.arange(3.0)}, ScalarReader("sum"))


# ---- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_stops_workers_and_prints_the_finished_rows(tmp_path):
    calls = tmp_path / "calls"
    env = {**os.environ, "WORKLOAD_SLEEP": "0.02", "WORKLOAD_COUNT": str(calls)}
    env.pop("WORKLOAD_IN_WORKER", None)
    env.pop("WORKLOAD_INTERRUPT_AT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "func", f"{W}:pair_loss", "--grad", f"{W}:pair_grad"]
        + ["--param", "a=2", "--param", "w=400", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    # Past the first parameter (a: 2 entries, under 60 evaluations), inside w.
    deadline = time.monotonic() + 120
    while _count(calls) < 200 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "INCOMPLETE" in out
    assert any(line.split()[:1] == ["a"] and "PASS" in line for line in out.splitlines()), out
    assert "not checked (interrupted): w" in out


# ---- Dask ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("grad", ["grad", "wrong_grad"])
def test_a_dask_cluster_gives_the_serial_report(clean_env, dask_client, grad):
    serial = check_function(_spec(grad))
    on_dask = check_function(_spec(grad), execution=Execution(dask=dask_client))
    assert serial.exit_code == (0 if grad == "grad" else 1)
    assert _same(on_dask.to_dict()) == _same(serial.to_dict())


def test_dask_local_n_from_the_command_line_gives_the_serial_report(runner, clean_env):
    pytest.importorskip("distributed")
    serial = runner.invoke(cli, [*FUNC, "--json"])
    on_dask = runner.invoke(cli, [*FUNC, "--json", "--dask", "local:2"])
    assert on_dask.exit_code == 0, on_dask.output
    assert _same(json.loads(on_dask.stdout)) == _same(json.loads(serial.stdout))


def test_a_dask_worker_killed_mid_check_changes_nothing(tmp_path, clean_env, dask_client):
    marker = str(tmp_path / "killed")
    spec = FuncSpec(
        loss=f"{WORKLOAD}:killing_loss", grad=f"{WORKLOAD}:grad", params=(("w", (60,)),), const=(("marker", marker),)
    )
    serial = check_function(spec)
    survived = check_function(spec, execution=Execution(dask=dask_client))
    assert Path(marker).exists()  # a worker process really ended during the check
    assert _same(survived.to_dict()) == _same(serial.to_dict())


def test_a_users_error_on_dask_is_the_same_line_as_on_local_workers(clean_env, dask_client):
    spec = FuncSpec(loss=f"{WORKLOAD}:raising_loss", grad=f"{WORKLOAD}:grad", params=(("w", (10,)),))
    with pytest.raises(UserCodeError) as local:
        check_function(spec, execution=Execution(workers=2))
    with pytest.raises(UserCodeError) as on_dask:
        check_function(spec, execution=Execution(dask=dask_client))
    assert str(on_dask.value) == str(local.value) == f"{W}:raising_loss raised ValueError: not in a worker, please"
    assert on_dask.value.frames and "raising_loss" in on_dask.value.frames[-1]


class _Sink:
    def __init__(self):
        self.plans = []

    def plan(self, text):
        self.plans.append(text)

    def start(self, name, total, position): ...

    def advance(self, count): ...

    def stop(self): ...


def test_the_progress_bar_is_told_the_estimate_and_the_workers(clean_env):
    sink = _Sink()
    check_function(_spec(), progress=sink, execution=Execution(workers=2))
    assert len(sink.plans) == 1
    assert sink.plans[0].startswith("about ") and sink.plans[0].endswith(" on 2 worker processes")


def test_the_rich_bar_shows_the_plan_beside_each_parameter():
    bar = RichProgress(Console(file=io.StringIO()), delay=0.0)
    bar.plan("about 3 min on 2 worker processes")
    bar.start("W1", 10, (1, 2))
    assert bar._name == "W1 (1 of 2) [about 3 min on 2 worker processes]"
    bar.stop()


def test_a_cluster_whose_workers_keep_dying_is_one_line_not_a_traceback(runner, clean_env):
    pytest.importorskip("distributed")
    clean_env.setenv("WORKLOAD_IN_WORKER", "exit")  # every evaluation on a worker ends it
    result = runner.invoke(cli, [*FUNC, "--dask", "local:1"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {W}:loss ended each Dask worker process that ran it (the cluster gave up on the task); the code "
        "under test must return a value, not exit or crash\n"
    )


def test_a_jacobian_check_resumes_from_its_checkpoint_too(tmp_path, clean_env):
    spec = FuncSpec(loss=f"{WORKLOAD}:vector", jac=f"{WORKLOAD}:vector_jac", params=(("w", (30,)),), seed=1)
    whole = check_function(spec)
    assert whole.exit_code == 0
    counter = tmp_path / "calls"
    clean_env.setenv("WORKLOAD_COUNT", str(counter))
    clean_env.setenv("WORKLOAD_INTERRUPT_AT", "45")
    checkpoint = str(tmp_path / "jac.ckpt")
    with pytest.raises(CheckInterrupted):
        check_function(spec, execution=Execution(checkpoint=checkpoint, workers=1))
    clean_env.delenv("WORKLOAD_INTERRUPT_AT")
    lines = Path(checkpoint).read_text().splitlines()[1:]
    assert 0 < sum(int(json.loads(line.split("\t")[0])["n"]) for line in lines) < whole.evaluations
    resumed = check_function(spec, execution=Execution(checkpoint=checkpoint, workers=2))
    assert _same(resumed.to_dict()) == _same(whole.to_dict())


def test_ctrl_c_on_workers_keeps_the_checkpoint_and_the_rerun_equals_an_uninterrupted_run(runner, tmp_path):
    calls = tmp_path / "calls"
    checkpoint = tmp_path / "run.ckpt"
    args = ["func", f"{W}:pair_loss", "--grad", f"{W}:pair_grad", "--param", "a=2", "--param", "w=150"]
    env = {**os.environ, "WORKLOAD_SLEEP": "0.01", "WORKLOAD_COUNT": str(calls)}
    env.pop("WORKLOAD_IN_WORKER", None)
    env.pop("WORKLOAD_INTERRUPT_AT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", *args, "--workers", "2", "--checkpoint", str(checkpoint)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while _count(calls) < 150 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    recorded = sum(int(json.loads(line.split("\t")[0])["n"]) for line in checkpoint.read_text().splitlines()[1:])
    assert recorded > 0
    resumed = runner.invoke(cli, [*args, "--checkpoint", str(checkpoint), "--json"])
    whole = runner.invoke(cli, [*args, "--json"])
    assert resumed.exit_code == whole.exit_code == 0, resumed.output
    assert _same(json.loads(resumed.stdout)) == _same(json.loads(whole.stdout))


@pytest.mark.parametrize(
    "where, message",
    [
        ("folder", "is not a regular file; give a file path"),
        ("missing/dir/run.ckpt", "cannot write the checkpoint"),
    ],
)
def test_a_checkpoint_path_that_cannot_be_one_is_refused(runner, tmp_path, where, message):
    (tmp_path / "folder").mkdir()
    result = runner.invoke(cli, [*FUNC, "--checkpoint", str(tmp_path / where)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for '--checkpoint': ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_file_the_dask_workers_cannot_see_is_shipped_to_them(tmp_path, clean_env, dask_client, monkeypatch):
    module = tmp_path / f"shipped_{tmp_path.name.replace('-', '_')}.py"
    module.write_text(WORKLOAD.read_text())
    spec = FuncSpec(loss=f"{module}:loss", grad=f"{module}:grad", params=(("w", (12,)),), seed=3)
    serial = check_function(spec)
    opened = workers.DaskWorkers.__init__

    def open_then_hide(self, *args, **kwargs):
        opened(self, *args, **kwargs)  # ships the file to every worker (Client.upload_file)
        module.rename(tmp_path / "moved_away.txt")  # and now no worker can read it by its path

    monkeypatch.setattr(workers.DaskWorkers, "__init__", open_then_hide)
    shipped = check_function(spec, execution=Execution(dask=dask_client))
    assert not module.exists()
    assert _same(shipped.to_dict()) == _same(serial.to_dict())

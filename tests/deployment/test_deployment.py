"""The deployment check's own parts: its process handling and its command line.

The check itself (every Airflow component, the faults) is ``bash .ci/deployment``; these tests
cover what it relies on to clean up and to refuse a run it cannot do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dev.deployment.__main__ import main, results_table
from dev.deployment.faults import Result
from dev.deployment.processes import Component, process_tree


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child of ours lingers as a zombie until reaped: that is not alive
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _component(tmp_path: Path) -> Component:
    # A shell with two background children: a stand-in for a worker and its task processes.
    return Component(
        "fake-worker",
        ["sh", "-c", "sleep 60 & sleep 60 & wait"],
        tmp_path / "logs" / "fake-worker.log",
        dict(os.environ),
        tmp_path / "pids",
    )


def _tree(component: Component) -> list[int]:
    assert component.proc is not None
    deadline = time.monotonic() + 10
    while len(tree := process_tree(component.proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(tree) == 3
    return tree


def test_kill_takes_the_whole_process_tree(tmp_path: Path) -> None:
    component = _component(tmp_path)
    component.start()
    tree = _tree(component)
    assert (tmp_path / "pids").read_text().split() == [str(tree[0])]  # for the shell's trap
    component.kill()
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in tree)


def test_restart_and_stop_leave_nothing_running(tmp_path: Path) -> None:
    component = _component(tmp_path)
    component.start()
    first = _tree(component)
    component.restart()
    second = _tree(component)
    assert component.restarts == 1 and set(first).isdisjoint(second)
    component.stop(timeout=5)
    time.sleep(0.2)
    assert component.proc is None
    assert not any(_alive(pid) for pid in first + second)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--faults", "worker-kill,nope"], "unknown ['nope']"),
        (["--executor", "local", "--faults", "worker-kill"], "needs --executor celery"),
    ],
)
def test_refuses_faults_it_cannot_run(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_results_table_says_pass_and_fail() -> None:
    table = results_table(
        [Result("a fault", "it recovers", "it recovered", True, 3.0), Result("b", "x", "y", False)]
    )
    assert "[PASS] a fault  (3 s)" in table and "[FAIL] b" in table
    assert table.splitlines()[-1] == "checks: 1 PASS, 1 FAIL"

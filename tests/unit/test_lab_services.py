"""Lab plumbing that needs no running services."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import LabError
from fleetbench.lab import fleet, services


def test_missing_binaries_name_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "find_binary", lambda name: None)
    with pytest.raises(LabError) as caught:
        services.require_binaries(("sshd", "docker-registry", "busybox"))
    message = str(caught.value)
    assert "apt-get install -y busybox-static docker-registry openssh-server" in message


def test_hosts_stay_on_loopback() -> None:
    assert fleet.host_names(2, "127.0.0.11") == [("lab01", "127.0.0.11"), ("lab02", "127.0.0.12")]
    with pytest.raises(LabError, match=r"127\.0\.0\.0/8"):
        fleet.host_names(3, "192.0.2.1")  # documentation range, never contacted
    with pytest.raises(LabError, match="leaves it"):
        fleet.host_names(5, "127.255.255.253")


def test_sshd_config_keeps_keys_only_and_its_own_home(tmp_path: Path) -> None:
    host = services.SshdHost("lab01", "127.0.0.11", 2222, tmp_path, tmp_path / "keys")
    text = services.sshd_config_text(host, [str(tmp_path / "bin")])
    assert "PasswordAuthentication no" in text
    assert "ListenAddress 127.0.0.11:2222" in text
    assert f"HOME={tmp_path / 'home'}" in text
    assert f"PATH={tmp_path / 'bin'}:" in text


def test_lab_commands_without_a_lab_exit_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "status", "--dir", str(tmp_path)]) == 2
    assert "fleetbench lab up --dir" in capsys.readouterr().err
    assert main(["lab", "down", "--dir", str(tmp_path)]) == 0  # idempotent: nothing to do


def test_bench_settings_are_validated() -> None:
    with pytest.raises(LabError, match="not a mode"):
        fleet._bench_settings({"bench": "explode"}, {})
    with pytest.raises(LabError, match="must be positive"):
        fleet._bench_settings({"factor": "0"}, {})
    assert fleet._bench_settings({"bench": "hang", "factor": "0.8"}, {"host": "lab01"}) == {
        "host": "lab01", "mode": "hang", "factor": "0.8"}


def test_bench_settings_plant_partial_failures_and_a_failing_perf_step() -> None:
    assert fleet._bench_settings({"bench": "fail", "fail_after": "3", "perf_csv": "missing"},
                                 {"host": "lab01"}) == {
        "host": "lab01", "mode": "fail", "fail_after": "3", "perf_csv": "missing"}
    assert fleet._bench_settings({"fail_after": "0"}, {})["fail_after"] == "0"
    with pytest.raises(LabError, match="not a count of points"):
        fleet._bench_settings({"fail_after": "-1"}, {})
    with pytest.raises(LabError, match="perf_csv=written or perf_csv=missing"):
        fleet._bench_settings({"perf_csv": "gone"}, {})


def test_stopping_a_service_leaves_no_process_it_forks_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like sshd taking a connection (an ssh client retrying at once) while it is stopped:
    the listener forks a child in a session of its own right after the stop has listed the
    processes below it. That child must not outlive the stop."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    script = (
        "import signal, subprocess, sys, time\n"
        "def fork(*_):\n"
        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        f"    open({str(pids)!r}, 'a').write(f'{{child.pid}}\\n')\n"
        "signal.signal(signal.SIGUSR1, fork)\n"
        "fork()\n"
        "while True:\n"
        "    time.sleep(0.01)\n"
    )
    listener = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)

    def forked() -> list[int]:
        return [int(p) for p in pids.read_text().split()] if pids.exists() else []

    listed = services.descendants

    def list_then_connect(pid: int) -> list[int]:
        found = listed(pid)
        if pid == listener.pid and len(forked()) == 1:
            os.kill(pid, signal.SIGUSR1)  # a new connection right after the listing
            deadline = time.monotonic() + 1  # a frozen listener forks nothing
            while len(forked()) == 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        return found

    try:
        while not forked():
            time.sleep(0.01)
        monkeypatch.setattr(services, "descendants", list_then_connect)
        services.stop_process(listener.pid)
        listener.wait(timeout=10)
        time.sleep(0.2)
        assert [pid for pid in forked() if services.pid_alive(pid)] == []
    finally:
        listener.kill()
        for pid in forked():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_bench_settings_plant_garbage_answers_on_named_slots() -> None:
    assert fleet._bench_settings({"garbage": "slot3"}, {})["garbage"] == "slot3"
    assert fleet._bench_settings({"garbage": "slot1,slot12"}, {})["garbage"] == "slot1,slot12"
    assert fleet._bench_settings({"garbage": "none"}, {"garbage": "slot3"})["garbage"] == "none"
    for wrong in ("3", "slot", "slot3,", "all", "slot3;slot4"):
        with pytest.raises(LabError, match="name slots"):
            fleet._bench_settings({"garbage": wrong}, {})

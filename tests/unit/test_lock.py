"""Whether a host's lock belongs to a dead run: judged on the controller (fleetbench.lock)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from fleetbench import lock
from fleetbench.lock import Controller, describe, is_stale, judge_lock

HERE = Controller(host="ctl01", pid=1000, boot_id="boot-A")


def alive_only(*pids: int) -> object:
    return lambda pid: pid in pids


@pytest.mark.parametrize(("holder", "alive", "stale", "why"), [
    # This controller, this boot: the pid decides.
    (Controller("ctl01", 4242, "boot-A"), (4242,), False, ""),
    (Controller("ctl01", 4242, "boot-A"), (), True, "no longer running"),
    # This controller rebooted since: whatever runs under that pid now is another process.
    (Controller("ctl01", 4242, "boot-B"), (4242,), True, "rebooted"),
    # A boot id one side does not know: the pid still decides.
    (Controller("ctl01", 4242, ""), (4242,), False, ""),
    (Controller("ctl01", 4242, ""), (), True, "no longer running"),
    # Another controller: not ours to judge, whatever its pid means here.
    (Controller("ctl02", 4242, "boot-A"), (), False, "only ctl02 can tell"),
    # A lock that names no controller (written by hand, or by an older fleetbench).
    (None, (), False, "does not say which controller"),
])
def test_staleness(holder: Controller | None, alive: tuple[int, ...], stale: bool,
                   why: str) -> None:
    verdict, reason = is_stale(holder, HERE, alive_only(*alive))  # type: ignore[arg-type]
    assert verdict is stale
    assert why in reason
    assert bool(reason) == (why != "")


def test_this_controller_without_a_boot_id_judges_by_pid() -> None:
    here = Controller("ctl01", 1, "")
    assert is_stale(Controller("ctl01", 5, "boot-A"), here, alive_only())[0] is True
    assert is_stale(Controller("ctl01", 5, "boot-A"), here, alive_only(5))[0] is False


def test_judge_lock_reads_what_the_host_reported() -> None:
    owner = {"run_id": "20261127T041500Z-1a2b", "since": "2026-11-27T04:15:02Z",
             "age_s": 3600, "controller": {"host": "ctl01", "pid": 4242, "boot_id": "boot-A"}}
    held = judge_lock(owner, HERE, alive_only())  # type: ignore[arg-type]
    assert held is not None
    assert held.contract() == {"run_id": "20261127T041500Z-1a2b",
                               "controller": {"host": "ctl01", "pid": 4242,
                                              "boot_id": "boot-A"},
                               "age_s": 3600, "stale": True}
    assert judge_lock({}, HERE) is None  # free
    # Whatever a hand-edited owner.json says, the judgement does not break.
    odd = judge_lock({"run_id": "?", "controller": {"host": "ctl01", "pid": "4242"},
                      "age_s": "long"}, HERE, alive_only())  # type: ignore[arg-type]
    assert odd is not None and odd.controller is None and odd.age_s is None
    assert odd.stale is False
    assert odd.contract()["controller"] is None


def test_controller_from_a_lock() -> None:
    data = {"host": "ctl01", "pid": 4242, "boot_id": "boot-A"}
    assert Controller.from_dict(data) == Controller("ctl01", 4242, "boot-A")
    assert Controller.from_dict(data).to_dict() == data  # type: ignore[union-attr]
    assert Controller.from_dict({"host": "ctl01", "pid": 4242}) == Controller("ctl01", 4242, "")
    for bad in (None, {}, [], {"host": "", "pid": 1}, {"host": "h", "pid": True},
                {"host": "h"}, {"pid": 1}):
        assert Controller.from_dict(bad) is None


def test_this_controller() -> None:
    here = lock.this_controller()
    assert here.host == socket.gethostname() and here.pid == os.getpid()
    assert here.boot_id == lock.boot_id()


def test_boot_id(tmp_path: Path) -> None:
    source = tmp_path / "boot_id"
    source.write_text("5700c203-0207-46a1-819a-3e32e05a2fca\n")
    assert lock.boot_id(source) == "5700c203-0207-46a1-819a-3e32e05a2fca"
    assert lock.boot_id(tmp_path / "missing") == ""


def test_sentences_name_the_run_the_controller_and_the_fix() -> None:
    def held(stale: bool, why: str, controller: Controller | None = HERE) -> lock.HostLock:
        return lock.HostLock(run_id="R-1", since="2026-11-27T04:15:02Z", controller=controller,
                             age_s=5, stale=stale, why=why)

    text = describe(held(True, "that fleetbench is no longer running"), "/srv/my inv.yml")
    assert text.startswith("in use by fleetbench run R-1 (since 2026-11-27T04:15:02Z, "
                           "controller ctl01, pid 1000), which is stale: that fleetbench")
    assert "`fleetbench unlock -i '/srv/my inv.yml' --run R-1`" in text
    text = describe(held(False, "only ctl02 can tell whether that run still runs"))
    assert "wait for it, or if it is dead, `fleetbench unlock -i INV --run R-1`" in text
    assert "stale" not in text
    text = describe(held(False, ""))
    assert text == ("in use by fleetbench run R-1 (since 2026-11-27T04:15:02Z, controller "
                    "ctl01, pid 1000), which is running on this controller: wait for it to end")
    text = describe(held(False, "the lock does not say which controller holds it", None))
    assert text.startswith("in use by fleetbench run R-1 (since 2026-11-27T04:15:02Z); the lock")


def test_inventory_of_ansible_sources() -> None:
    assert lock.inventory_of(["/srv/inv.yml"]) == "/srv/inv.yml"
    assert lock.inventory_of("/srv/inv.yml") == "/srv/inv.yml"
    assert lock.inventory_of(["/a.yml", "/b.yml"]) is None
    assert lock.inventory_of(None) is None

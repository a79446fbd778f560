"""The controller's watch of detached hosts: collect as soon as a host's slots end, wait
out SSH outages within the reconnect window, give up after it (fleetbench.watch); how a
look at a host is made and read (fleetbench.sshpoll)."""

from __future__ import annotations

import json
from collections.abc import Callable

import paramiko
import pytest

from fleetbench.errors import BadInput
from fleetbench.run import reconnect_windows, slots_to_run
from fleetbench.sshpoll import endpoint, parse_answer, record_command
from fleetbench.watch import Observation, host_state, poll_interval, retry_delay, watch


class Clock:
    """Time that passes only when the watch sleeps (or a look takes time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def record(state: str, updated: float, **slots: str) -> dict[str, object]:
    return {"state": state, "updated": updated,
            "slots": {name: {"state": s} for name, s in slots.items()}}


def script(clock: Clock, plan: dict[str, Callable[[float], Observation]]
           ) -> Callable[[str], Observation]:
    """A look at each host as a function of the time since the watch began."""
    start = clock.now
    return lambda host: plan[host](clock.now - start)


def running(host: str, clock: Clock) -> Observation:
    return Observation(host, True, record=record("running", clock.now, slot0="running"),
                       host_clock=int(clock.now))


def done(host: str, clock: Clock) -> Observation:
    return Observation(host, True, record=record("done", clock.now, slot0="exited"),
                       host_clock=int(clock.now))


def test_each_host_is_collected_as_soon_as_its_slots_end() -> None:
    clock = Clock()
    look = script(clock, {
        "fast": lambda t: done("fast", clock) if t >= 5 else running("fast", clock),
        "slow": lambda t: done("slow", clock) if t >= 300 else running("slow", clock),
    })
    batches: list[tuple[float, list[str]]] = []
    updates: list[tuple[str, str]] = []

    def collect(hosts: list[str]) -> set[str]:
        batches.append((clock.now, hosts))
        return set()

    ends = watch(["fast", "slow"], look, collect=collect, window_s={},
                 on_update=lambda h, t: updates.append((h, t)), clock=clock, sleep=clock.sleep)
    assert {h: e.how for h, e in ends.items()} == {"fast": "collected", "slow": "collected"}
    (first_at, first), (second_at, second) = batches
    assert first == ["fast"] and second == ["slow"]
    assert first_at - 1_000_000 < 10  # looked at every 2 s at first
    assert 300 <= second_at - 1_000_000 <= 330  # every 15 s by then
    assert ("slow", "0/1 slots ended, 1 running · 0:00:00") in updates


def test_an_outage_within_the_window_is_waited_out() -> None:
    clock = Clock()
    look = script(clock, {"lab02": lambda t: (
        running("lab02", clock) if t < 20 else
        Observation("lab02", False, error="[Errno 111] Connection refused") if t < 65 else
        done("lab02", clock))})
    updates: list[str] = []
    ends = watch(["lab02"], look, collect=lambda hosts: set(), window_s={"lab02": 1800},
                 on_update=lambda h, t: updates.append(t), clock=clock, sleep=clock.sleep)
    assert ends["lab02"].how == "collected"
    waiting = [u for u in updates if u.startswith("waiting: unreachable since ")]
    assert waiting and all(u.endswith("([Errno 111] Connection refused)") for u in waiting)
    assert len(set(waiting)) == 1  # the same "since" all along
    assert any(u.startswith("reachable again") for u in updates)


def test_a_host_out_of_reach_past_its_window_ends_unreachable_and_is_not_collected() -> None:
    clock = Clock()
    look = script(clock, {
        "gone": lambda t: Observation("gone", False, error="timed out"),
        "fine": lambda t: done("fine", clock) if t > 100 else running("fine", clock)})
    collected: list[str] = []
    ends = watch(["gone", "fine"], look, collect=lambda hosts: collected.extend(hosts) or set(),
                 window_s={"gone": 120, "fine": 120}, clock=clock, sleep=clock.sleep)
    assert collected == ["fine"]
    gone = ends["gone"]
    assert gone.how == "unreachable"
    assert gone.detail.startswith("unreachable since ")
    assert gone.detail.endswith("(timed out), longer than the reconnect window (120s)")
    assert clock.now - 1_000_000 < 200  # given up at the window's end, not much later


def test_a_host_unreachable_while_collecting_is_collected_again_when_back() -> None:
    clock = Clock()
    look = script(clock, {"h": lambda t: done("h", clock)})
    attempts: list[float] = []

    def collect(hosts: list[str]) -> set[str]:
        attempts.append(clock.now)
        return set(hosts) if len(attempts) == 1 else set()

    ends = watch(["h"], look, collect=collect, window_s={"h": 600}, clock=clock,
                 sleep=clock.sleep)
    assert ends["h"].how == "collected" and len(attempts) == 2


def test_ctrl_c_ends_the_watch_of_every_host_still_running() -> None:
    clock = Clock()
    look = script(clock, {"h": lambda t: running("h", clock)})
    ends = watch(["h"], look, collect=lambda hosts: set(), window_s={},
                 cancel=lambda: clock.now - 1_000_000 > 30, clock=clock, sleep=clock.sleep)
    assert ends["h"].how == "canceled"


def test_a_record_whose_supervisor_stopped_writing_is_stale() -> None:
    fresh = Observation("h", True, record=record("running", 1000), host_clock=1060)
    assert host_state(fresh) == "running"
    assert host_state(Observation("h", True, record=record("running", 1000),
                                  host_clock=1091)) == "stale"
    assert host_state(Observation("h", True, record=record("done", 0), host_clock=9999)) == "done"
    assert host_state(Observation("h", True, record=None, host_clock=1)) == "absent"


def test_looks_thin_out_as_the_benchmark_goes_on_and_back_off_when_unreachable() -> None:
    assert poll_interval(0) == 2 and poll_interval(100) == 5 and poll_interval(7200) == 30
    assert [retry_delay(n) for n in (1, 2, 3, 6, 20)] == [2, 4, 8, 60, 60]


def test_the_hosts_answer_is_read_whole_or_reported() -> None:
    body = json.dumps(record("running", 5, slot0="running"))
    seen = parse_answer("h", f"{body}\n1733240000\n")
    assert seen.record is not None and seen.record["state"] == "running"
    assert seen.host_clock == 1733240000
    assert parse_answer("h", "\n1733240000\n").record is None  # no record (yet)
    broken = parse_answer("h", '{"state": "runn\n1733240000\n')
    assert broken.reachable and broken.error == "the record could not be read"
    assert record_command("/var/tmp/fleet bench", "r1") == (
        "cat '/var/tmp/fleet bench/runs/r1/slots.json' 2>/dev/null; echo; date +%s")


def test_the_poller_connects_the_way_ansible_would() -> None:
    lab = endpoint("lab01", {
        "ansible_host": "127.0.9.11", "ansible_port": 2222, "ansible_user": "root",
        "ansible_ssh_private_key_file": "/lab/ssh/id_ed25519",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/lab/known_hosts "
                                   "-o StrictHostKeyChecking=no -o IdentitiesOnly=yes"})
    assert (lab.hostname, lab.port, lab.user, lab.key_files, lab.known_hosts, lab.jump) == (
        "127.0.9.11", 2222, "root", ("/lab/ssh/id_ed25519",), ("/lab/known_hosts",), None)
    behind = endpoint("gpu17", {"ansible_host": "198.51.100.17",
                                "ansible_ssh_common_args": "-J ops@192.0.2.1:2200 -p 22"})
    assert behind.jump is not None
    assert (behind.jump.hostname, behind.jump.port, behind.jump.user) == ("192.0.2.1", 2200,
                                                                          "ops")
    config = paramiko.SSHConfig.from_text(
        "Host gpu*\n  HostName %h.example.net\n  User admin\n  Port 2022\n")
    named = endpoint("gpu18", {}, config)
    assert (named.hostname, named.user, named.port) == ("gpu18.example.net", "admin", 2022)


def test_resume_asks_for_slots_without_a_verdict_and_reruns_failed_ones_only_if_asked(
        ) -> None:
    planned = [{"name": f"slot{i}"} for i in range(5)]
    previous = {"slots": {"slot0": {"status": "ok"}, "slot1": {"status": "failed:no-results"},
                          "slot2": {"status": "failed:interrupted"},
                          "slot3": {"status": "failed:lost"}}}
    to_run, rerun = slots_to_run(previous, planned)
    assert [s["name"] for s in to_run] == ["slot2", "slot3", "slot4"] and rerun == []
    to_run, rerun = slots_to_run(previous, planned, rerun_failed=True)
    assert [s["name"] for s in to_run] == ["slot1", "slot2", "slot3", "slot4"]
    assert rerun == ["slot1"]


def test_reconnect_windows_come_from_the_option_the_inventory_or_the_default() -> None:
    host_vars = {"a": {"fleetbench_reconnect_window": "2h"}, "b": {}}
    assert reconnect_windows(host_vars) == {"a": 7200, "b": 1800}
    assert reconnect_windows(host_vars, "45s") == {"a": 45, "b": 45}
    with pytest.raises(BadInput, match="fleetbench_reconnect_window of a 'soon' is not a"):
        reconnect_windows({"a": {"fleetbench_reconnect_window": "soon"}})
    with pytest.raises(BadInput, match="--reconnect-window 'x' is not a duration"):
        reconnect_windows(host_vars, "x")



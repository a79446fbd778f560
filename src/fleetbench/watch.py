"""Watch hosts whose slots run detached, until each is collected or out of reach too long.

One loop in the controller's process: each host's record is looked at now and then
(:mod:`fleetbench.sshpoll`, a bounded pool of threads), more rarely as the benchmark goes
on; a host whose slots have all ended is handed to ``collect`` at once. A host that cannot
be reached is looked at again with backoff for its reconnect window, and reported as
``waiting: unreachable since …`` meanwhile; only after the window does it end
``unreachable``, its results left on the host for ``fleetbench run --resume``.

Pure apart from the callbacks (look, collect, clock, sleep): unit-tested with fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: A record still ``running`` whose last write is older than this (host clock) has lost its
#: supervisor (module_utils/fleetbench_slots.py STALE_S).
STALE_S = 90
DEFAULT_WINDOW_S = 30 * 60
POLL_WORKERS = 16
# Slot states that will not change any more (module_utils/fleetbench_slots.py).
ENDED = frozenset({"exited", "lost", "failed-start"})


@dataclass(frozen=True)
class Observation:
    """One look at a host's record of a run."""

    host: str
    reachable: bool
    error: str = ""
    record: Mapping[str, Any] | None = field(default=None, repr=False)
    host_clock: int | None = None  # the host's time when it answered (epoch seconds)


@dataclass(frozen=True)
class WatchEnd:
    """How the watch of one host ended."""

    host: str
    how: str  # collected | unreachable | canceled
    detail: str = ""
    unreachable_since: str | None = None
    #: When the watch saw the host's slots end (or gave up on it): the benchmark step's end.
    ended_at: str = ""


@dataclass
class _Watched:
    host: str
    next_look: float = 0.0
    unreachable_since: float | None = None
    unreachable_utc: str | None = None
    misses: int = 0
    error: str = ""
    ended_at: str = ""


def host_state(observation: Observation) -> str:
    """``absent``, ``running``, ``stale`` (running, but its supervisor stopped writing),
    ``done`` or ``stopped``, from one look at a reachable host."""
    record = observation.record
    if record is None:
        return "absent"
    state = str(record.get("state") or "running")
    if (state == "running" and observation.host_clock is not None
            and observation.host_clock - float(record.get("updated") or 0) >= STALE_S):
        return "stale"
    return state


def slot_counts(record: Mapping[str, Any] | None) -> dict[str, int]:
    """How many slots are running, have ended, or wait to start."""
    counts = {"running": 0, "ended": 0, "waiting": 0}
    for slot in ((record or {}).get("slots") or {}).values():
        state = slot.get("state")
        key = "running" if state == "running" else "ended" if state in ENDED else "waiting"
        counts[key] += 1
    return counts


def describe(observation: Observation, elapsed_s: float) -> str:
    """One line of progress for a host: slots running/ended, time since the watch began."""
    counts = slot_counts(observation.record)
    total = sum(counts.values())
    minutes, seconds = divmod(int(elapsed_s), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{counts['ended']}/{total} slots ended, {counts['running']} running · "
            f"{hours}:{minutes:02d}:{seconds:02d}")


def poll_interval(elapsed_s: float) -> float:
    """Seconds to the next look at a running host: often at first (short lab runs end in
    seconds), every 30 s once a benchmark has run for ten minutes."""
    return min(30.0, max(2.0, elapsed_s / 20.0))


def retry_delay(misses: int) -> float:
    """Backoff between looks at a host that could not be reached: 2, 4, … 60 s."""
    return float(min(60, 2 ** min(misses, 6)))


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _timestamp(epoch: float) -> str:
    """The time in the form of the steps' times (Ansible's, UTC with offset)."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def watch(hosts: Sequence[str], look: Callable[[str], Observation], *,
          collect: Callable[[list[str]], set[str]],
          window_s: Mapping[str, float],
          on_update: Callable[[str, str], None] | None = None,
          cancel: Callable[[], bool] = lambda: False,
          clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep,
          workers: int = POLL_WORKERS) -> dict[str, WatchEnd]:
    """Watch ``hosts`` until each is collected, unreachable beyond its window, or canceled.

    ``collect(hosts)`` brings back the files of hosts whose slots have ended and returns
    those it could not reach (they are waited for again, within their window).
    """
    started = clock()
    pending = {host: _Watched(host) for host in hosts}
    ends: dict[str, WatchEnd] = {}
    report = on_update or (lambda host, text: None)

    def unreachable(entry: _Watched, now: float, error: str) -> None:
        if entry.unreachable_since is None:
            entry.unreachable_since, entry.unreachable_utc = now, _utc(now)
        entry.misses += 1
        entry.error = error
        window = float(window_s.get(entry.host, DEFAULT_WINDOW_S))
        if now - entry.unreachable_since >= window:
            ends[entry.host] = WatchEnd(
                entry.host, "unreachable", unreachable_since=entry.unreachable_utc,
                detail=f"unreachable since {entry.unreachable_utc} ({error}), longer than "
                       f"the reconnect window ({int(window)}s)", ended_at=_timestamp(now))
            del pending[entry.host]
            return
        report(entry.host, f"waiting: unreachable since {entry.unreachable_utc} ({error})")
        left = entry.unreachable_since + window - now
        entry.next_look = now + min(retry_delay(entry.misses), max(left, 0.5))

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        while pending and not cancel():
            now = clock()
            due = [entry for entry in pending.values() if entry.next_look <= now]
            if not due:
                sleep(min(1.0, max(0.05, min(e.next_look for e in pending.values()) - now)))
                continue
            ready: list[str] = []
            for entry, seen in zip(due, pool.map(look, [e.host for e in due]), strict=True):
                now = clock()
                if not seen.reachable or seen.error:
                    unreachable(entry, now, seen.error or "unreachable")
                    continue
                if entry.unreachable_since is not None:
                    report(entry.host, f"reachable again (unreachable since "
                                       f"{entry.unreachable_utc})")
                    entry.unreachable_since, entry.unreachable_utc, entry.misses = None, None, 0
                if host_state(seen) == "running":
                    report(entry.host, describe(seen, now - started))
                    entry.next_look = now + poll_interval(now - started)
                else:
                    entry.ended_at = entry.ended_at or _timestamp(now)
                    ready.append(entry.host)
            if ready and not cancel():
                missed = collect(ready)
                now = clock()
                for host in ready:
                    if host in missed:
                        unreachable(pending[host], now, "unreachable while collecting")
                    else:
                        ends[host] = WatchEnd(host, "collected", ended_at=pending[host].ended_at)
                        del pending[host]
    for host in pending:
        ends[host] = WatchEnd(host, "canceled", detail="the run was interrupted",
                              ended_at=_timestamp(clock()))
    return ends

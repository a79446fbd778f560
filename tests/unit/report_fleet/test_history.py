"""The SQLite history: round trip, comparable runs, trends, idempotent re-insert, CLI."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.history import (
    SCHEMA_VERSION,
    default_history_path,
    fleet_medians,
    list_runs,
    load_rows,
    previous_comparable_run,
    store_run,
    trends,
)
from fleetbench.reports.fleet import FleetRun, collect_run
from fleetbench.reports.records import CONFIGURATION_KEYS
from tests.unit.report_fleet.fleet_runs import HostSpec, write_run


def make_run(root: Path, run_id: str, day: int, factor: float = 1.0, **plan: str) -> FleetRun:
    hosts = {name: HostSpec(factor=factor) for name in ("lab01", "lab02", "lab03")}
    return collect_run(write_run(root / run_id, hosts, run_id=run_id,
                                 created=f"2026-11-{day:02d}T04:00:00Z", **plan))


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as connection:
        value: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return value


def test_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    run = make_run(tmp_path, "20261101T040000Z-aaaa", 1)
    store_run(db, run, gate_failed=False)
    assert load_rows(db, run.run_id) == list(run.rows)
    (stored,) = list_runs(db)
    assert (stored.run_id, stored.model, stored.dtype, stored.scenario, stored.gate_failed) == (
        run.run_id, "Llama-3.1-8B-Instruct", "float16", "all", False)
    assert count(db, "hosts") == 3
    with sqlite3.connect(db) as connection:  # both tables name a configuration the same way
        for table, extra in (("records", ("value", "unit")), ("medians", ("median", "count"))):
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")
                       if row[1] != "gpu_serials"]  # schema 3 appends it to records
            assert columns[-len(extra) - len(CONFIGURATION_KEYS):] == [*CONFIGURATION_KEYS,
                                                                        *extra]


def test_storing_a_run_again_replaces_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    run = make_run(tmp_path, "20261101T040000Z-aaaa", 1)
    store_run(db, run, gate_failed=False)
    store_run(db, run, gate_failed=True)
    assert count(db, "runs") == 1
    assert count(db, "records") == len(run.rows)
    assert list_runs(db)[0].gate_failed
    # The same run id with different results (the report rebuilt after a fix).
    fewer = FleetRun(run.run_id, run.run_dir, run.created, run.finished, run.plan, run.hosts,
                     run.rows[:10])
    store_run(db, fewer, gate_failed=False)
    assert count(db, "records") == 10
    assert load_rows(db, run.run_id) == list(run.rows[:10])


def test_previous_comparable_run(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    first = make_run(tmp_path, "20261101T040000Z-0001", 1)
    second = make_run(tmp_path, "20261102T040000Z-0002", 2)
    other_dtype = make_run(tmp_path, "20261103T040000Z-0003", 3, dtype="float8")
    other_scenario = make_run(tmp_path, "20261104T040000Z-0004", 4, scenario="latency")
    later = make_run(tmp_path, "20261106T040000Z-0006", 6)
    current = make_run(tmp_path, "20261105T040000Z-0005", 5)
    assert previous_comparable_run(db, current) is None  # no database yet
    for run in (first, second, other_dtype, other_scenario, later):
        store_run(db, run, gate_failed=False)
    assert previous_comparable_run(db, current) == second.run_id
    store_run(db, current, gate_failed=False)
    assert previous_comparable_run(db, current.run_id) == second.run_id
    assert previous_comparable_run(db, first.run_id) is None
    with pytest.raises(BadInput, match="not in the history database"):
        previous_comparable_run(db, "nope")


def test_a_run_without_results_is_no_baseline(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    good = make_run(tmp_path, "20261101T040000Z-0001", 1)
    empty = collect_run(write_run(tmp_path / "e", {"lab01": HostSpec(status="unreachable",
                                                                      reports=False)},
                                  run_id="20261102T040000Z-0002",
                                  created="2026-11-02T04:00:00Z"))
    current = make_run(tmp_path, "20261103T040000Z-0003", 3)
    store_run(db, good, gate_failed=False)
    store_run(db, empty, gate_failed=True)
    assert previous_comparable_run(db, current) == good.run_id


def test_trends_fleet_and_host_medians(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    for day, factor in ((1, 1.0), (2, 2.0), (3, 3.0)):
        store_run(db, make_run(tmp_path, f"2026110{day}T040000Z-000{day}", day, factor),
                  gate_failed=False)
    points = trends(db, metric="throughput_total", scenario="throughput", limit=2)
    assert [p.run_id for p in points][::4] == ["20261102T040000Z-0002", "20261103T040000Z-0003"]
    assert len(points) == 2 * 4  # 2 runs x 4 throughput configurations
    first = points[0]
    assert first.configuration[4] == 4000 and first.count == 6 and first.host is None
    # 15152 tok/s x2; the 6 slots' noise factors -0.6/-0.3/-0.3/0/+0.3/+0.6 % have
    # median -0.15 %.
    assert first.median == pytest.approx(15152 * 2 * 0.9985)
    host = trends(db, metric="throughput_total", host="lab02", scenario="throughput", limit=1)
    assert {(p.host, p.count) for p in host} == {("lab02", 2)}
    assert trends(db, model="Other") == []
    with pytest.raises(BadInput, match="at least 1"):
        trends(db, limit=0)


def _medians_from_records(db: Path, run_id: str) -> dict[tuple[object, ...], float]:
    """What the medians table must hold, recomputed from the records the slow way."""
    import statistics

    values: dict[tuple[object, ...], list[float]] = {}
    for row in load_rows(db, run_id):
        if row.record.value is not None:
            values.setdefault(row.record.configuration, []).append(row.record.value)
    return {key: statistics.median(group) for key, group in values.items()}


def test_fleet_trends_and_the_baseline_come_from_stored_medians(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    run = make_run(tmp_path, "20261101T040000Z-0001", 1)
    failed = FleetRun(run.run_id, run.run_dir, run.created, run.finished, run.plan, run.hosts,
                      tuple(dataclasses.replace(row, record=dataclasses.replace(
                          row.record, value=None)) if row.host == "lab01" else row
                          for row in run.rows))
    store_run(db, failed, gate_failed=False)
    expected = _medians_from_records(db, run.run_id)
    assert fleet_medians(db, run.run_id) == pytest.approx(expected)
    fleet = trends(db, limit=1)
    assert {p.configuration: p.median for p in fleet} == pytest.approx(expected)
    assert {p.count for p in fleet} == {4}  # lab01's 2 slots failed: 4 of 6 values
    # Only the medians are read for the fleet: the records can go and nothing changes.
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM records")
    assert trends(db, limit=1) == fleet
    assert fleet_medians(db, run.run_id) == pytest.approx(expected)
    assert trends(db, host="lab02", limit=1) == []  # a host's trend needs its records


def test_a_version_1_database_gets_its_medians_once(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    runs = [make_run(tmp_path, f"2026110{day}T040000Z-000{day}", day, factor)
            for day, factor in ((1, 1.0), (2, 1.5))]
    for run in runs:
        store_run(db, run, gate_failed=False)
    before = trends(db, limit=5)
    with sqlite3.connect(db) as connection:  # what fleetbench 1 left: no medians table
        connection.execute("DROP TABLE medians")
        connection.execute("PRAGMA user_version = 1")
    assert trends(db, limit=5) == before
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert count(db, "medians") == len(before)
    for run in runs:
        assert fleet_medians(db, run.run_id) == pytest.approx(
            _medians_from_records(db, run.run_id))


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETBENCH_HISTORY", str(tmp_path / "x.sqlite"))
    assert default_history_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("FLEETBENCH_HISTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_history_path() == tmp_path / "state" / "fleetbench" / "history.sqlite"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_history_path() == (
        tmp_path / "home" / ".local" / "state" / "fleetbench" / "history.sqlite")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    db.write_text("not sqlite at all, just some text " * 100)
    with pytest.raises(BadInput, match="not a fleetbench history database"):
        store_run(db, make_run(tmp_path, "20261101T040000Z-0001", 1), gate_failed=False)


def test_history_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    for day in (1, 2):
        store_run(db, make_run(tmp_path, f"2026110{day}T040000Z-000{day}", day, day),
                  gate_failed=day == 2)
    assert main(["history", "--db", str(db), "--metric", "throughput_total", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in data["runs"]] == ["20261101T040000Z-0001",
                                                   "20261102T040000Z-0002"]
    assert [r["gate_failed"] for r in data["runs"]] == [False, True]
    assert {p["metric"] for p in data["points"]} == {"throughput_total"}
    assert main(["history", "--db", str(db), "--host", "lab01", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "median of lab01's slots" in out and "gate failed" in out
    assert "20261101T040000Z-0001" not in out


def test_history_command_without_database(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no history database" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


def test_history_default_database_is_the_environment_one(
        private_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_run(private_history, make_run(tmp_path, "20261101T040000Z-0001", 1),
              gate_failed=False)
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["db"] == str(private_history)


def test_pruning_keeps_the_newest_records_and_every_fleet_median(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    nightly = [make_run(tmp_path, f"2026110{day}T040000Z-000{day}", day, 1.0 + day / 10)
               for day in range(1, 6)]
    other = make_run(tmp_path, "20261101T050000Z-9999", 1, dtype="float8")
    for run in (*nightly, other):
        store_run(db, run, gate_failed=False)
    fleet_before = trends(db, limit=10)
    assert main(["history", "--db", str(db), "--keep-records", "2"]) == 0
    said = capsys.readouterr().out
    assert "per-host records of 3 run(s) deleted" in said and "MB ->" in said
    with sqlite3.connect(db) as connection:
        kept = {row[0] for row in connection.execute("SELECT DISTINCT run_id FROM records")}
    # The 2 newest nightly runs, and the float8 series' only run (its own newest).
    assert kept == {nightly[3].run_id, nightly[4].run_id, other.run_id}
    assert trends(db, limit=10) == fleet_before  # fleet medians of every run stay
    assert {p.run_id for p in trends(db, host="lab01", limit=10)} == kept
    assert len(list_runs(db)) == 6  # every run stays listed
    # A pruned run is still a baseline: the previous run of the oldest kept one.
    assert previous_comparable_run(db, nightly[3].run_id) == nightly[2].run_id
    assert fleet_medians(db, nightly[0].run_id)
    assert main(["history", "--db", str(db), "--keep-records", "2"]) == 0  # nothing left to do
    assert "of 0 run(s) deleted" in capsys.readouterr().out


def test_pruning_needs_a_database_and_a_positive_count(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(tmp_path / "none.sqlite"), "--keep-records", "3"]) == 2
    assert "no history database" in capsys.readouterr().err
    db = tmp_path / "h.sqlite"
    store_run(db, make_run(tmp_path, "20261101T040000Z-0001", 1), gate_failed=False)
    assert main(["history", "--db", str(db), "--keep-records", "0"]) == 2
    assert "keep at least 1" in capsys.readouterr().err
    assert count(db, "records") > 0


def test_gpu_trend_and_attribution_on_every_row(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    for day, factor in ((1, 1.0), (2, 0.8)):
        hosts = {h: HostSpec(slot_gpus=True, gpu_model="MI300X") for h in ("lab01", "lab02")}
        if day == 2:
            hosts["lab02"] = HostSpec(slot_gpus=True, gpu_model="MI300X", factor=factor)
        run = collect_run(write_run(tmp_path / str(day), hosts,
                                    run_id=f"2026110{day}T040000Z-000{day}",
                                    created=f"2026-11-0{day}T04:00:00Z"))
        store_run(db, run, gate_failed=False)
    points = trends(db, gpu="LAB02-GPU1", metric="throughput_gen", limit=5)
    assert {p.run_id for p in points} == {"20261101T040000Z-0001", "20261102T040000Z-0002"}
    assert {p.host for p in points} == {"lab02"} and {p.count for p in points} == {1}
    first, second = (sorted((p for p in points if p.run_id == r), key=lambda p: p.configuration)
                     for r in ("20261101T040000Z-0001", "20261102T040000Z-0002"))
    assert all(b.median == pytest.approx(a.median * 0.8, rel=0.02)  # type: ignore[operator]
               for a, b in zip(first, second, strict=True))
    facts = points[0].attribution
    assert facts is not None and facts["gpu_model"] == "MI300X"
    assert (facts["compute_partition"], facts["rocm_version"]) == ("CPX", "6.4.1")
    assert facts["image_digest"] and facts["mad_commit"] == "0123456789abcdef0123"
    assert points[0].to_dict()["gpu"] == "LAB02-GPU1"
    assert trends(db, gpu="NO-SUCH-GPU", limit=5) == []
    # A host's trend carries the same facts.
    assert trends(db, host="lab01", limit=1)[0].attribution == {
        **facts, "image_digest": facts["image_digest"]}


def test_a_version_2_database_gains_the_attribution_columns(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    with sqlite3.connect(db) as connection:
        connection.executescript("""
            CREATE TABLE hosts (run_id TEXT, host TEXT, status TEXT, reason TEXT,
                image_digest TEXT, mad_commit TEXT, compute_partition TEXT,
                memory_partition TEXT, PRIMARY KEY (run_id, host));
            PRAGMA user_version = 2;""")
    run = make_run(tmp_path, "20261101T040000Z-aaaa", 1)
    store_run(db, run, gate_failed=False)
    with sqlite3.connect(db) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(hosts)")}
        assert {"rocm_version", "driver_version", "vllm_version", "gpu_model"} <= columns
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

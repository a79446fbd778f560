"""The history database: every reported run's records in SQLite, for baselines and trends.

Where it lives (:func:`default_history_path`): ``$FLEETBENCH_HISTORY``, else
``$XDG_STATE_HOME/fleetbench/history.sqlite``, else
``~/.local/state/fleetbench/history.sqlite``.

Tables: ``runs`` (one row per run: id, times, model, dtype, scenario, gate verdict),
``hosts`` (status and facts per host of a run), ``records`` (one row per host, slot,
configuration and metric, value null for a failed measurement) and ``medians`` (per run
and configuration the fleet median and how many values it has). Storing a run again (a
report rebuilt) replaces its rows in one transaction, so the database never holds a run
twice or half.

Fleet trends and the previous-run baseline read ``medians``: a few dozen rows per run
instead of every record (256,000 for 500 hosts x 8 slots), so a nightly history does not
make every report slower. Per-host trends read ``records``, which hold nearly all of the
file (about 40 MB per run of 500 hosts x 8 slots): :func:`prune_records` drops them for all
but the newest runs of each model, dtype and scenario and keeps the rest, so fleet trends
still span every run.

Two runs are *comparable* when they benchmarked the same model with the same dtype and
the same scenario selection (``all``, ``latency``…); the previous comparable run is the
default baseline of ``fleetbench report build``.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import FleetRun, HostRecord, model_name
from fleetbench.reports.records import CONFIGURATION_KEYS, Configuration, Record

SCHEMA_VERSION = 3
#: Runs shown in the HTML report's trends (the current one included).
TREND_RUNS = 20

# The columns of a configuration (CONFIGURATION_KEYS), in records and medians alike.
_CONFIGURATION_SQL = """
    model           TEXT NOT NULL,
    scenario        TEXT NOT NULL,
    tp              INTEGER NOT NULL,
    batch_size      INTEGER,
    num_prompts     INTEGER,
    max_concurrency INTEGER,
    input_len       INTEGER NOT NULL,
    output_len      INTEGER NOT NULL,
    dtype           TEXT NOT NULL,
    metric          TEXT NOT NULL"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    created     TEXT,
    finished    TEXT,
    model       TEXT NOT NULL,
    dtype       TEXT NOT NULL,
    scenario    TEXT NOT NULL,
    run_dir     TEXT,
    gate_failed INTEGER NOT NULL,
    stored      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hosts (
    run_id       TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    host         TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    image_digest TEXT,
    mad_commit   TEXT,
    compute_partition TEXT,
    memory_partition  TEXT,
    rocm_version TEXT,
    driver_version TEXT,
    vllm_version TEXT,
    gpu_model    TEXT,
    PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS records (
    run_id          TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    host            TEXT NOT NULL,
    slot            TEXT NOT NULL,{_CONFIGURATION_SQL},
    value           REAL,
    unit            TEXT NOT NULL,
    gpu_serials     TEXT
);
CREATE TABLE IF NOT EXISTS medians (
    run_id          TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,{_CONFIGURATION_SQL},
    median          REAL,
    count           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_run ON records(run_id);
CREATE INDEX IF NOT EXISTS medians_run ON medians(run_id);
CREATE INDEX IF NOT EXISTS runs_comparable ON runs(model, dtype, scenario, created);
"""
_RECORD_COLUMNS = ("run_id", "host", "slot", *CONFIGURATION_KEYS, "value", "unit")
#: What a host ran with, on every history row of it (attribution of a change).
ATTRIBUTION = ("image_digest", "mad_commit", "compute_partition", "memory_partition",
               "rocm_version", "driver_version", "vllm_version", "gpu_model")
# Columns later schemas added to tables of earlier ones.
_ADDED_COLUMNS = {"hosts": ("rocm_version", "driver_version", "vllm_version", "gpu_model"),
                  "records": ("gpu_serials",)}
_MEDIAN_COLUMNS = ("run_id", *CONFIGURATION_KEYS, "median", "count")


def default_history_path() -> Path:
    """Where the history lives: ``$FLEETBENCH_HISTORY``, else under ``$XDG_STATE_HOME``."""
    explicit = os.environ.get("FLEETBENCH_HISTORY")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state).expanduser() if state else Path.home() / ".local" / "state"
    return base / "fleetbench" / "history.sqlite"


@contextmanager
def connect(db: Path, *, create: bool = True) -> Iterator[sqlite3.Connection]:
    """An open connection with the schema in place; BadInput when ``db`` is not usable."""
    db = Path(db)
    if not create and not db.is_file():
        raise BadInput(f"no history database at {db} — build a report first "
                       "(`fleetbench report build RUN`) or pass --db")
    try:
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(db)
    except (OSError, sqlite3.Error) as exc:
        raise BadInput(f"cannot open the history database {db} ({exc}) — "
                       "pass another path (--history/--db) or --no-history") from None
    with closing(connection):
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BadInput(f"{db} was written by a newer fleetbench (schema {version}) — "
                               "upgrade fleetbench or use another database")
            connection.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                with connection:
                    _migrate(connection, version)
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{db} is not a fleetbench history database ({exc}) — "
                           "pass another path (--history/--db)") from None
        yield connection


def store_run(db: Path, run: FleetRun, *, gate_failed: bool) -> None:
    """Store a run's hosts and records, replacing whatever the database held for it."""
    stored = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with connect(db) as connection, connection:
        # The transaction (``with connection``) makes the replacement all or nothing.
        connection.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
        connection.execute(
            "INSERT INTO runs (run_id, created, finished, model, dtype, scenario, run_dir,"
            " gate_failed, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, run.created, run.finished, run.model, run.dtype, run.scenario,
             str(run.run_dir), int(gate_failed), stored),
        )
        columns = ("run_id", "host", "status", "reason", *ATTRIBUTION)
        connection.executemany(
            f"INSERT INTO hosts ({', '.join(columns)})"  # noqa: S608
            f" VALUES ({', '.join('?' * len(columns))})",
            [(run.run_id, h.name, h.status, h.reason,
              *(getattr(h, name) for name in ATTRIBUTION)) for h in run.hosts],
        )
        serials = {(h.name, slot.name): ",".join(slot.serials) or None
                   for h in run.hosts for slot in h.slots}
        marks = ", ".join("?" * (len(_RECORD_COLUMNS) + 1))
        connection.executemany(
            f"INSERT INTO records ({', '.join(_RECORD_COLUMNS)}, gpu_serials)"  # noqa: S608
            f" VALUES ({marks})",
            [(run.run_id, row.host, row.slot, *row.record.configuration, row.record.value,
              row.record.unit, serials.get((row.host, row.slot))) for row in run.rows],
        )
        _store_medians(connection, run.run_id,
                       ((row.record.configuration, row.record.value) for row in run.rows))


def _store_medians(connection: sqlite3.Connection, run_id: str,
                   values: Iterable[tuple[Configuration, float | None]]) -> None:
    """The ``medians`` rows of one run from its (configuration, value) pairs, in first-seen
    order of the configurations (a configuration whose values all failed: median null)."""
    groups: dict[Configuration, list[float]] = {}
    for configuration, value in values:
        group = groups.setdefault(configuration, [])
        if value is not None:
            group.append(float(value))
    marks = ", ".join("?" * len(_MEDIAN_COLUMNS))
    connection.executemany(
        f"INSERT INTO medians ({', '.join(_MEDIAN_COLUMNS)}) VALUES ({marks})",  # noqa: S608
        [(run_id, *configuration, statistics.median(group) if group else None, len(group))
         for configuration, group in groups.items()],
    )


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    """Bring a database of schema ``version`` up to :data:`SCHEMA_VERSION` (in a transaction)."""
    for table, added in _ADDED_COLUMNS.items():
        have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for column in added:
            if column not in have:  # schema 3: attribution per host, GPU serials per record
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    if version == 1:  # version 1 had no medians: compute them once from the records
        run_ids = [row[0] for row in connection.execute(
            "SELECT run_id FROM runs WHERE run_id NOT IN (SELECT run_id FROM medians)")]
        for run_id in run_ids:
            _store_medians(connection, run_id, (
                (tuple(row[:-1]), row[-1]) for row in connection.execute(
                    f"SELECT {', '.join(CONFIGURATION_KEYS)}, value FROM records"  # noqa: S608
                    " WHERE run_id = ? ORDER BY rowid", (run_id,))))


def fleet_medians(db: Path, run_id: str) -> dict[Configuration, float]:
    """The fleet median of every configuration a stored run measured (its baseline form)."""
    with connect(db, create=False) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(CONFIGURATION_KEYS)}, median FROM medians"  # noqa: S608
            " WHERE run_id = ? AND median IS NOT NULL ORDER BY rowid", (run_id,)).fetchall()
    return {tuple(row[:-1]): float(row[-1]) for row in rows}


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_records` removed."""

    runs: tuple[str, ...]
    records: int
    bytes_before: int
    bytes_after: int


def prune_records(db: Path, keep: int) -> Pruned:
    """Delete the per-host records of all but the ``keep`` newest runs of each model, dtype
    and scenario, then compact the file. Runs, hosts and fleet medians stay: fleet trends
    and baselines still cover every run; per-host trends only the kept ones."""
    if keep < 1:
        raise BadInput(f"--keep-records {keep}: keep at least 1 run's records")
    before = Path(db).stat().st_size if Path(db).is_file() else 0
    with connect(db, create=False) as connection:
        with connection:
            old = [row[0] for row in connection.execute(
                "SELECT run_id FROM (SELECT run_id, row_number() OVER (PARTITION BY model,"
                " dtype, scenario ORDER BY created DESC, run_id DESC) AS newer FROM runs)"
                " WHERE newer > ? AND run_id IN (SELECT run_id FROM records)"
                " ORDER BY run_id", (keep,))]
            deleted = sum(connection.execute("DELETE FROM records WHERE run_id = ?",
                                             (run_id,)).rowcount for run_id in old)
        if deleted:
            connection.execute("VACUUM")  # give the space back to the file system
    return Pruned(tuple(old), deleted, before, Path(db).stat().st_size)


@dataclass(frozen=True)
class StoredRun:
    """One row of the ``runs`` table."""

    run_id: str
    created: str | None
    model: str
    dtype: str
    scenario: str
    gate_failed: bool
    run_dir: str | None


def list_runs(db: Path, *, model: str | None = None) -> list[StoredRun]:
    """Stored runs, oldest first (optionally of one model: report name or Hugging Face id)."""
    query = "SELECT run_id, created, model, dtype, scenario, gate_failed, run_dir FROM runs"
    params: tuple[Any, ...] = ()
    if model:
        query += " WHERE model = ?"
        params = (model_name(model),)
    with connect(db, create=False) as connection:
        rows = connection.execute(query + " ORDER BY created, run_id", params).fetchall()
    return [StoredRun(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]


def previous_comparable_run(db: Path, run: FleetRun | str) -> str | None:
    """The latest stored run before ``run`` with the same model, dtype and scenario.

    ``run`` is a :class:`FleetRun` or the id of a stored run. Runs without any result
    are no baseline and are passed over.
    """
    if not Path(db).is_file():
        if isinstance(run, str):
            raise BadInput(f"no history database at {db} — build a report first")
        return None
    with connect(db, create=False) as connection:
        if isinstance(run, str):
            row = connection.execute(
                "SELECT run_id, created, model, dtype, scenario FROM runs WHERE run_id = ?",
                (run,),
            ).fetchone()
            if row is None:
                raise BadInput(f"run {run} is not in the history database {db} — "
                               "build its report first")
            run_id, created, model, dtype, scenario = row
        else:
            run_id, created, model, dtype, scenario = (
                run.run_id, run.created, run.model, run.dtype, run.scenario)
        found = connection.execute(
            "SELECT run_id FROM runs WHERE model = ? AND dtype = ? AND scenario = ?"
            " AND run_id != ? AND (coalesce(created, ''), run_id) < (coalesce(?, ''), ?)"
            " AND EXISTS (SELECT 1 FROM medians WHERE medians.run_id = runs.run_id"
            " AND medians.median IS NOT NULL)"
            " ORDER BY created DESC, run_id DESC LIMIT 1",
            (model, dtype, scenario, run_id, created, run_id),
        ).fetchone()
    return None if found is None else str(found[0])


def load_rows(db: Path, run_id: str) -> list[HostRecord]:
    """The stored records of one run as :class:`HostRecord` rows."""
    with connect(db, create=False) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(_RECORD_COLUMNS[1:])} FROM records WHERE run_id = ?"  # noqa: S608
            " ORDER BY rowid",
            (run_id,),
        ).fetchall()
    keys = _RECORD_COLUMNS[3:]
    return [HostRecord(r[0], r[1], Record.from_dict(dict(zip(keys, r[2:], strict=True))))
            for r in rows]


@dataclass(frozen=True)
class TrendPoint:
    """The median of one configuration in one run: of the fleet, or of one host's slots."""

    run_id: str
    created: str | None
    configuration: Configuration
    median: float | None
    count: int
    host: str | None = None
    #: With a host or GPU trend: what that host ran with in that run (:data:`ATTRIBUTION`).
    attribution: Mapping[str, str | None] | None = None
    gpu: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        data: dict[str, Any] = {"run_id": self.run_id, "created": self.created, "host": self.host,
                **dict(zip(CONFIGURATION_KEYS, self.configuration, strict=True)),
                "median": self.median, "count": self.count}
        if self.gpu is not None:
            data["gpu"] = self.gpu
        if self.attribution is not None:
            data["attribution"] = dict(self.attribution)
        return data


def trends(
    db: Path,
    *,
    model: str | None = None,
    host: str | None = None,
    metric: str | None = None,
    scenario: str | None = None,
    limit: int = 10,
    comparable_to: FleetRun | None = None,
    gpu: str | None = None,
) -> list[TrendPoint]:
    """Per run (the ``limit`` latest, oldest first) the median of each configuration.

    The fleet median, with ``host`` the median of that host's slots, with ``gpu`` (a
    serial) the median of the slots that used that GPU. ``comparable_to`` keeps only runs
    comparable with that run (and not after it). Host and GPU points carry what the host
    ran with (image digest, MAD commit, ROCm, driver, vLLM, partition mode, GPU model).
    """
    if gpu:
        return _gpu_trends(db, gpu, model=model, metric=metric, scenario=scenario,
                           limit=limit)
    if limit < 1:
        raise BadInput(f"--limit {limit}: give at least 1")
    where = ["1 = 1"]
    params: list[Any] = []
    if model:
        where.append("runs.model = ?")
        params.append(model_name(model))
    if comparable_to is not None:
        where.append("runs.model = ? AND runs.dtype = ? AND runs.scenario = ?"
                     " AND (coalesce(runs.created, ''), runs.run_id) <= (coalesce(?, ''), ?)")
        params += [comparable_to.model, comparable_to.dtype, comparable_to.scenario,
                   comparable_to.created, comparable_to.run_id]
    with connect(db, create=comparable_to is not None) as connection:
        run_rows: Sequence[tuple[str, str | None]] = connection.execute(
            f"SELECT run_id, created FROM runs WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY created DESC, run_id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        runs = list(reversed(run_rows))
        # Fleet medians were stored with the run; a host's median comes from its records.
        table, value = ("records", "value") if host else ("medians", "median, count")
        record_where = ["run_id = ?"]
        extra: list[Any] = []
        for column, wanted in (("host", host), ("metric", metric), ("scenario", scenario)):
            if wanted:
                record_where.append(f"{column} = ?")
                extra.append(wanted)
        points: list[TrendPoint] = []
        for run_id, created in runs:
            rows = connection.execute(
                f"SELECT {', '.join(CONFIGURATION_KEYS)}, {value} FROM {table}"  # noqa: S608
                f" WHERE {' AND '.join(record_where)} ORDER BY rowid",
                (run_id, *extra),
            )
            if not host:
                points.extend(TrendPoint(run_id, created, tuple(row[:-2]), row[-2], row[-1])
                              for row in rows)
                continue
            values: dict[Configuration, list[float]] = defaultdict(list)
            seen: dict[Configuration, None] = {}
            for row in rows:
                configuration: Configuration = tuple(row[:-1])
                seen[configuration] = None
                if row[-1] is not None:
                    values[configuration].append(float(row[-1]))
            facts = attribution(connection, run_id).get(host)
            points.extend(
                TrendPoint(run_id, created, configuration,
                           statistics.median(values[configuration])
                           if values[configuration] else None,
                           len(values[configuration]), host, facts)
                for configuration in seen
            )
    return points


def attribution(connection: sqlite3.Connection, run_id: str,
                ) -> dict[str, dict[str, str | None]]:
    """Per host of a stored run: what it ran with (:data:`ATTRIBUTION`)."""
    rows = connection.execute(
        f"SELECT host, {', '.join(ATTRIBUTION)} FROM hosts WHERE run_id = ?",  # noqa: S608
        (run_id,)).fetchall()
    return {row[0]: dict(zip(ATTRIBUTION, row[1:], strict=True)) for row in rows}


def run_attribution(db: Path, run_id: str) -> dict[str, dict[str, str | None]]:
    """:func:`attribution` of a stored run, opening the database."""
    with connect(db, create=False) as connection:
        return attribution(connection, run_id)


def _gpu_trends(db: Path, serial: str, *, model: str | None, metric: str | None,
                scenario: str | None, limit: int) -> list[TrendPoint]:
    """Per run that used GPU ``serial`` (the ``limit`` latest): the median of its slots."""
    where = ["(',' || records.gpu_serials || ',') LIKE ?"]
    params: list[Any] = [f"%,{serial},%"]
    for column, wanted in (("runs.model", model_name(model) if model else None),
                           ("records.metric", metric), ("records.scenario", scenario)):
        if wanted:
            where.append(f"{column} = ?")
            params.append(wanted)
    columns = ", ".join(f"records.{key}" for key in CONFIGURATION_KEYS)
    with connect(db, create=False) as connection:
        rows = connection.execute(
            f"SELECT records.run_id, runs.created, records.host, {columns}, records.value"  # noqa: S608
            " FROM records JOIN runs ON runs.run_id = records.run_id"
            f" WHERE {' AND '.join(where)} ORDER BY runs.created, records.run_id,"
            " records.rowid", params).fetchall()
        run_ids = list(dict.fromkeys(row[0] for row in rows))[-limit:]
        facts = {run_id: attribution(connection, run_id) for run_id in run_ids}
    keep = set(run_ids)
    groups: dict[tuple[str, str | None, str, Configuration], list[float | None]] = {}
    for row in rows:
        if row[0] in keep:
            groups.setdefault((row[0], row[1], row[2], tuple(row[3:-1])), []).append(row[-1])
    points = []
    for (run_id, created, host, configuration), values in groups.items():
        known = [float(v) for v in values if v is not None]
        points.append(TrendPoint(run_id, created, configuration,
                                 statistics.median(known) if known else None, len(known),
                                 host, facts[run_id].get(host), serial))
    return points

"""Durable storage of tasks and nodes: SQLite (WAL) or PostgreSQL through SQLAlchemy Core.

One writer (the service's writer thread) uses one connection; each group of
state changes is one transaction. The schema is versioned in table ``meta`` and
created on first start.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from hybridsched.errors import ConfigError

SCHEMA_VERSION = 1
"""Version of the tables below; a database with another version is refused."""

log = logging.getLogger(__name__)

metadata = sa.MetaData()

tasks_table = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("arrival_s", sa.Float, nullable=False),
    sa.Column("region", sa.Integer, nullable=False),
    sa.Column("data_mb", sa.Float, nullable=False),
    sa.Column("work_gi", sa.Float, nullable=False),
    sa.Column("memory_mb", sa.Float, nullable=False),
    sa.Column("deadline_s", sa.Float, nullable=True),  # NULL: no deadline
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("node", sa.String(200), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("retries", sa.Integer, nullable=False, default=0),
    sa.Column("decision_s", sa.Float, nullable=True),
    sa.Column("ready_s", sa.Float, nullable=True),
    sa.Column("start_s", sa.Float, nullable=True),
    sa.Column("finish_s", sa.Float, nullable=True),
    sa.Column("observed_s", sa.Float, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)
sa.Index("ix_tasks_status", tasks_table.c.status)

nodes_table = sa.Table(
    "nodes",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("drained", sa.Boolean, nullable=False, default=False),
)

observations_table = sa.Table(
    "observations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("exec_ratio", sa.Float, nullable=False),
    sa.Column("exec_weight", sa.Float, nullable=False),
    sa.Column("exec_time_s", sa.Float, nullable=False),
    sa.Column("exec_count", sa.BigInteger, nullable=False),
)
"""Per node that finished a task: the decayed mean of its execution ratios (a row is
written in the transaction of the finish report that changes it; added in schema 1
by ``create_all``, so older databases gain it empty)."""

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

TASK_COLUMNS = tuple(c.name for c in tasks_table.columns)
ACTIVE = ("pending", "assigned", "running")
"""Statuses of tasks in flight (the others are ended)."""
MUTABLE_COLUMNS = (
    "status",
    "node",
    "attempt",
    "retries",
    "decision_s",
    "ready_s",
    "start_s",
    "finish_s",
    "observed_s",
    "exit_code",
    "reason",
)

DEFAULT_URL = "sqlite:///hybridsched.db"


def normalize_url(url: str) -> str:
    """SQLAlchemy URL for a ``--db`` value (``sqlite:///PATH`` or ``postgresql://...``).

    Raises:
        ConfigError: another scheme.
    """
    if url.startswith("sqlite:///"):
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(
        f"--db: {url!r} is not supported; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def redact(url: str) -> str:
    """The URL with any password replaced, for logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is not logged at all
        return "<db>"


class Store:
    """The database: schema, loading at start, and batched writes.

    Args:
        url: ``sqlite:///PATH`` or ``postgresql://...``.
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            path = self.url[len("sqlite:///") :]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self._conn: Connection | None = None
        # plain DB-API executemany for the hot writes: SQLAlchemy's per-row parameter
        # processing costs more than SQLite's own work at thousands of rows a second
        ph = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (
            f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) "
            f"VALUES ({', '.join([ph] * len(TASK_COLUMNS))})"
        )
        self._update_sql = (
            f"UPDATE tasks SET {', '.join(f'{c} = {ph}' for c in MUTABLE_COLUMNS)} "
            f"WHERE task_id = {ph}"
        )

    # ------------------------------------------------------------------ schema

    def open(self) -> None:
        """Connect, create the schema on first start, check its version.

        Raises:
            ConfigError: the database has another schema version, or cannot be reached.
        """
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
                ).first()
                if row is None:
                    conn.execute(
                        meta_table.insert(), {"key": "schema_version", "value": str(SCHEMA_VERSION)}
                    )
                elif int(row[0]) != SCHEMA_VERSION:
                    raise ConfigError(
                        f"--db {redact(self.url)}: schema version {row[0]}, this hybridsched "
                        f"needs {SCHEMA_VERSION}"
                    )
        except sa.exc.DBAPIError as exc:  # unreachable, or a file that is not a database
            raise ConfigError(
                f"--db {redact(self.url)}: cannot open the database ({exc.orig})"
            ) from None
        self._conn = self.engine.connect()

    def close(self) -> None:
        """Close the writer connection and the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    # ----------------------------------------------------------------- reading

    def load_tasks(self, active_only: bool = False) -> list[tuple[Any, ...]]:
        """Task rows in ``TASK_COLUMNS`` order; only those in flight with ``active_only``."""
        q = sa.select(*tasks_table.columns)
        if active_only:
            q = q.where(tasks_table.c.status.in_(ACTIVE))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def load_ended(self) -> list[tuple[int, str]]:
        """``(task_id, status)`` of every ended task (plain driver rows: fast at 10^5)."""
        sql = (
            "SELECT task_id, status FROM tasks "
            "WHERE status NOT IN ('pending', 'assigned', 'running')"
        )
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(sql)
            rows = cur.fetchall()
            cur.close()
        finally:
            raw.close()
        return rows

    def read_tasks(self, task_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Rows of these tasks (a read connection; any thread)."""
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for k in range(0, len(task_ids), 900):
                q = sa.select(*tasks_table.columns).where(
                    tasks_table.c.task_id.in_(list(task_ids[k : k + 900]))
                )
                out.extend(dict(r._mapping) for r in conn.execute(q))
        return out

    def load_nodes(self) -> dict[str, bool]:
        """Drained flag per node name that has one."""
        with self.engine.connect() as conn:
            return {r[0]: bool(r[1]) for r in conn.execute(sa.select(*nodes_table.columns))}

    def load_observations(self) -> dict[str, tuple[float, float, float, int]]:
        """Per node name with one: ``(exec_ratio, exec_weight, exec_time_s, exec_count)``."""
        with self.engine.connect() as conn:
            return {
                r[0]: (float(r[1]), float(r[2]), float(r[3]), int(r[4]))
                for r in conn.execute(sa.select(*observations_table.columns))
            }

    def get_meta(self, key: str) -> Any:
        """A JSON value of table ``meta``, ``None`` when absent."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == key)).first()
        return None if row is None else json.loads(row[0])

    # ----------------------------------------------------------------- writing

    def transaction(self) -> Connection:
        """The writer's connection, inside a new transaction (``commit``/``rollback`` it)."""
        if self._conn is None:
            raise RuntimeError("store: not open")
        self._conn.begin()
        return self._conn

    def put_meta(self, conn: Connection, key: str, value: Any) -> None:
        """Insert or replace a JSON value of table ``meta``."""
        text = json.dumps(value)
        n = conn.execute(
            meta_table.update().where(meta_table.c.key == key).values(value=text)
        ).rowcount
        if n == 0:
            conn.execute(meta_table.insert(), {"key": key, "value": text})

    def insert_tasks(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert new task rows, each a tuple in ``TASK_COLUMNS`` order."""
        if rows:
            conn.exec_driver_sql(self._insert_sql, list(rows))

    def update_tasks(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Update tasks; each row is ``MUTABLE_COLUMNS`` values then the ``task_id``."""
        rows = list(rows)
        if rows:
            conn.exec_driver_sql(self._update_sql, rows)

    def save_observations(
        self, conn: Connection, rows: Iterable[tuple[str, float, float, float, int]]
    ) -> None:
        """Insert or replace nodes' observations: ``(name, ratio, weight, time_s, count)``."""
        t = observations_table
        for name, ratio, weight, time_s, count in rows:
            values = {
                "exec_ratio": ratio,
                "exec_weight": weight,
                "exec_time_s": time_s,
                "exec_count": count,
            }
            if conn.execute(t.update().where(t.c.name == name).values(**values)).rowcount == 0:
                conn.execute(t.insert(), {"name": name, **values})

    def set_drained(self, conn: Connection, name: str, drained: bool) -> None:
        """Record a node's drained flag."""
        n = conn.execute(
            nodes_table.update().where(nodes_table.c.name == name).values(drained=drained)
        ).rowcount
        if n == 0:
            conn.execute(nodes_table.insert(), {"name": name, "drained": drained})


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers never block the writer; NORMAL is durable in WAL mode against a
    # process crash (SIGKILL), which is what "committed" must survive here.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def wall() -> float:
    """Wall-clock time, s (one place, so tests can reason about it)."""
    return time.time()

"""The instance's SQLite storage with one pooled connection per database file, instead of one per event.

Dagster's SQLite event log opens a new engine and connection for every event it stores (a materialisation
writes the run's file and the index file, a check evaluation the index file twice) and closes them after
one statement; closing the last connection to a WAL database checkpoints it, and the checkpoint syncs the
file. A step over a range of months stores a materialisation and several check evaluations per month:
cleaning 264 months spent 47 s of its 61 s storing events that way, and took 13 s with these pooled connections
(`dagster asset materialize` of cleaned_bars over 2005-01..2026-12 on the default universe, 2026-12-07).

Everything else is Dagster's: the same files, tables, WAL journal, busy timeout and initialisation (the
instance's data stays readable by a plain SQLite instance). dagster.yaml selects it through its instance
class, whose default storage it is: under the instance's folder wherever that is ($DAGSTER_HOME, or the
temporary folder of a `dagster dev` without one), and replaced by a `storage` block such as PostgreSQL's.
Run processes rebuild it from the instance reference. Pinned to dagster 1.13.27's SqliteEventLogStorage
(`_connect`, `_initdb`, `has_table`); quantlab_assets_tests/defs/test_instance_storage.py exercises it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml
from dagster._core.instance import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

# Engines kept per process: the index file and the files of the runs a process writes or reads most
# recently. A long-lived process (the UI, the daemon) reads many runs' files; older engines are closed.
MAX_OPEN_SHARDS = 8


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, each database file reached through one engine holding one connection."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine (call with `_db_lock` held): created, and its database initialised, on first use."""
        if self._engines_pid != os.getpid():
            # A forked process must not use its parent's connections: it opens its own.
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        connection_string, connect_args = self.conn_string_for_shard(shard), {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        if shard not in self._initialized_dbs:
            # Dagster's initialisation holds a connection while it inspects the file through a second one.
            self._initdb(create_engine(connection_string, poolclass=NullPool, connect_args=connect_args))
            self._initialized_dbs.add(shard)
        engine = create_engine(connection_string, poolclass=QueuePool, pool_size=1, max_overflow=0,
                               connect_args=connect_args)
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_SHARDS:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As Dagster's: one transaction per `with`, under the storage's lock (the UI's event watchers share it).
        with self._db_lock:
            with self._engine(shard).connect() as connection, connection.begin():
                yield connection

    def has_table(self, table_name: str) -> bool:
        # Asked inside open transactions (every stored asset event asks for the tags table), so neither
        # the lock nor the pool: Dagster's own question (a new engine each time) until the table exists.
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present

    def dispose(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (same files under `base_dir`), its event log pooled."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(os.path.join(base_dir, "history", "runs", ""))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class PooledSqliteInstance(DagsterInstance):
    """Dagster's instance, its default storage PooledSqliteStorage in the instance's folder."""

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        storage = ConfigurableClassData(__name__, PooledSqliteStorage.__name__,
                                        yaml.dump({"base_dir": base_dir}, default_flow_style=False))
        return {**InstanceRef.config_defaults(base_dir), "storage": storage}

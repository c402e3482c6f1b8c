"""Durable memory for swarms: runs, results, metrics, benchmarks, decisions and events."""

from swarmperf.store.migrations import SCHEMA_VERSION
from swarmperf.store.paths import (
    DATA_DIR_ENV,
    DB_FILENAME,
    database_path,
    default_data_dir,
    resolve_data_dir,
)
from swarmperf.store.records import (
    RUN_ABORTED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    AgentNodeRecord,
    BenchmarkRecord,
    DecisionRecord,
    EventRecord,
    MetricRow,
    RunRecord,
)
from swarmperf.store.sqlite import Store

__all__ = [
    "DATA_DIR_ENV",
    "DB_FILENAME",
    "RUN_ABORTED",
    "RUN_INTERRUPTED",
    "RUN_RUNNING",
    "SCHEMA_VERSION",
    "AgentNodeRecord",
    "BenchmarkRecord",
    "DecisionRecord",
    "EventRecord",
    "MetricRow",
    "RunRecord",
    "Store",
    "database_path",
    "default_data_dir",
    "resolve_data_dir",
]

"""Schema creation and the schema version check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from esper.errors import FailedPrecondition
from esper.leyline.v1 import blueprint_pb2
from esper.urza.db import SCHEMA_VERSION, UrzaDatabase, schema_meta
from tests.unit.urza.support import make_hub, submit


def test_an_empty_database_gets_the_current_schema(database_url: str) -> None:
    database = UrzaDatabase.open(database_url)
    with database.read() as conn:
        assert conn.execute(text("SELECT version FROM schema_meta WHERE component = 'urza'")).scalar_one() == (
            SCHEMA_VERSION
        )
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    database.close()


def test_reopening_keeps_the_data(database_url: str, tmp_path: Path) -> None:
    hub = make_hub(database_url, tmp_path / "store")
    blueprint = submit(hub)
    hub.close()
    reopened = make_hub(database_url, tmp_path / "store")
    assert submit(reopened).blueprint_id == blueprint.blueprint_id
    reopened.close()


def test_another_schema_version_is_refused(database_url: str) -> None:
    database = UrzaDatabase.open(database_url)
    with database.write() as conn:
        conn.execute(update(schema_meta).values(version=SCHEMA_VERSION + 1))
    database.close()
    with pytest.raises(FailedPrecondition) as caught:
        UrzaDatabase.open(database_url)
    assert caught.value.reason == "SCHEMA_VERSION_UNSUPPORTED"
    assert f"version {SCHEMA_VERSION + 1}" in caught.value.message


def test_urza_tables_without_a_recorded_version_are_refused(database_url: str) -> None:
    database = UrzaDatabase.open(database_url)
    with database.write() as conn:
        conn.execute(text("DROP TABLE schema_meta"))
    database.close()
    with pytest.raises(FailedPrecondition) as caught:
        UrzaDatabase.open(database_url)
    assert caught.value.reason == "SCHEMA_VERSION_UNSUPPORTED"


def test_unsupported_backends_and_in_memory_sqlite_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        UrzaDatabase("mysql://localhost/urza")
    with pytest.raises(ValueError, match="in-memory"):
        UrzaDatabase("sqlite://")


def test_safe_url_hides_the_password() -> None:
    database = UrzaDatabase("postgresql+psycopg://urza:secret@127.0.0.1:1/urza")
    assert "secret" not in database.safe_url
    database.close()


class _DeadlockDetected(Exception):
    sqlstate = "40P01"


def test_a_transaction_the_database_aborted_is_run_again(database_url: str) -> None:
    database = UrzaDatabase.open(database_url)
    calls: list[int] = []

    def work(conn: object) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError("SELECT 1", None, _DeadlockDetected())
        return "done"

    assert database.transact(work) == "done"
    assert len(calls) == 2

    def broken(conn: object) -> str:
        raise DBAPIError("SELECT 1", None, ValueError("not transient"))

    with pytest.raises(DBAPIError):
        database.transact(broken)
    database.close()


def test_a_schema_1_database_is_migrated_and_its_kernels_read_as_depth_kernels(database_url: str) -> None:
    database = UrzaDatabase.open(database_url)
    with database.write() as conn:
        # Schema 1 had no growth kind or output shape on kernels.
        conn.execute(text("ALTER TABLE kernels DROP COLUMN growth_kind"))
        conn.execute(text("ALTER TABLE kernels DROP COLUMN output_shape"))
        conn.execute(update(schema_meta).values(version=1))
        conn.execute(text("INSERT INTO blueprints VALUES ('bp-1', 'aa', x'00', '', 'n', 1, 4, '', 10, '', 1, 0, 0)"))
        conn.execute(
            text(
                "INSERT INTO kernels (kernel_id, blueprint_id, pipeline, hardware_target, sha256, size_bytes, "
                "object_key, status, input_kind, input_shape, parameter_count, toolchain_hash, "
                "compile_duration_us, template_id, worker_id, lease_token, lease_expire_us, create_us, update_us) "
                "VALUES ('k1', 'bp-1', 2, 'cpu', 'ff', 1, 'o', 3, 1, '16', 10, 't', 0, '', '', '', 0, 0, 0)"
            )
        )
    database.close()
    migrated = UrzaDatabase.open(database_url)
    with migrated.read() as conn:
        assert conn.execute(select(schema_meta.c.version)).scalar_one() == SCHEMA_VERSION
        row = conn.execute(text("SELECT growth_kind, output_shape FROM kernels")).one()
    assert tuple(row) == (blueprint_pb2.GROWTH_KIND_DEPTH, "16")
    migrated.close()

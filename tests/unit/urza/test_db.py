"""Schema creation and the schema version check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from esper.errors import FailedPrecondition
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.urza.db import SCHEMA_VERSION, UrzaDatabase, schema_meta
from tests.support.urza import claim, compile_all, complete, kernel_id_for, make_hub, submit, validate


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
        # Schema 1 had no growth kind or output shape on kernels, nor signatures.
        conn.execute(text("ALTER TABLE kernels DROP COLUMN growth_kind"))
        conn.execute(text("ALTER TABLE kernels DROP COLUMN output_shape"))
        conn.execute(text("ALTER TABLE kernels DROP COLUMN signature"))
        conn.execute(text("ALTER TABLE kernels DROP COLUMN signing_key_id"))
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


def test_a_schema_2_database_is_migrated_and_its_unsigned_kernels_are_compiled_again(
    database_url: str, tmp_path: Path
) -> None:
    hub = make_hub(database_url, tmp_path / "store")
    blueprint = submit(hub, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    (kernel,) = compile_all(hub)
    validate(hub)
    hub.close()
    database = UrzaDatabase.open(database_url)
    with database.write() as conn:  # back to what schema 2 stored
        conn.execute(text("ALTER TABLE kernels DROP COLUMN signature"))
        conn.execute(text("ALTER TABLE kernels DROP COLUMN signing_key_id"))
        conn.execute(update(schema_meta).values(version=2))
    database.close()
    upgraded = make_hub(database_url, tmp_path / "store")
    got = upgraded.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint.blueprint_id))
    assert got.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED
    assert [k.status for k in got.kernels] == [kernel_pb2.KERNEL_STATUS_REJECTED]
    (job,) = got.compile_jobs
    assert (job.status, job.attempts, job.kernel_id) == (kernel_pb2.COMPILE_JOB_STATUS_QUEUED, 0, "")
    # A signed kernel can take its place (a new toolchain hash gives it a new id).
    again = claim(upgraded)
    assert again is not None
    complete(upgraded, again, kernel_id=kernel_id_for(again, toolchain="89abcdef"))
    assert len(upgraded.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint.blueprint_id)).kernels) == 2
    assert kernel.kernel_id
    upgraded.close()

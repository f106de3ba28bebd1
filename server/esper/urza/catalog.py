"""Reading blueprints, kernels and jobs: lookups, listings and the kernel query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, exists, func, select

from esper.errors import NotFound
from esper.leyline.v1 import kernel_pb2
from esper.urza.convert import Row, kernel_to_proto, shape_key
from esper.urza.db import blueprints, compile_jobs, kernel_tags, kernels, validation_reports


def get_blueprint_row(conn: Connection, blueprint_id: str) -> Row:
    row = conn.execute(select(blueprints).where(blueprints.c.blueprint_id == blueprint_id)).mappings().first()
    if row is None:
        raise NotFound(f"no blueprint {blueprint_id!r}", reason="BLUEPRINT_NOT_FOUND")
    return row


def list_blueprint_rows(conn: Connection, *, status: int, offset: int, limit: int) -> tuple[list[Row], bool]:
    """One page, newest first, and whether more follow."""
    query = select(blueprints)
    if status:
        query = query.where(blueprints.c.status == status)
    query = query.order_by(blueprints.c.create_us.desc(), blueprints.c.blueprint_id.desc())
    return _page(conn, query, offset, limit)


def list_job_rows(conn: Connection, *, status: int, offset: int, limit: int) -> tuple[list[Row], bool]:
    """One page in queue order (oldest first), and whether more follow."""
    c = compile_jobs.c
    query = select(compile_jobs)
    if status:
        query = query.where(c.status == status)
    return _page(conn, query.order_by(c.create_us, c.pipeline, c.job_id), offset, limit)


def job_rows_of(conn: Connection, blueprint_id: str) -> list[Row]:
    c = compile_jobs.c
    query = select(compile_jobs).where(c.blueprint_id == blueprint_id).order_by(c.pipeline, c.job_id)
    return list(conn.execute(query).mappings())


def kernel_rows_of(conn: Connection, blueprint_id: str) -> list[Row]:
    c = kernels.c
    query = select(kernels).where(c.blueprint_id == blueprint_id).order_by(c.create_us.desc(), c.kernel_id)
    return list(conn.execute(query).mappings())


def get_kernel_row(conn: Connection, kernel_id: str) -> Row:
    row = conn.execute(select(kernels).where(kernels.c.kernel_id == kernel_id)).mappings().first()
    if row is None:
        raise NotFound(f"no kernel {kernel_id!r}", reason="KERNEL_NOT_FOUND")
    return row


def kernel_protos(conn: Connection, rows: Sequence[Row]) -> list[kernel_pb2.KernelArtifact]:
    """Kernels with their tags and validation reports (two queries, whatever the page size)."""
    ids = [row["kernel_id"] for row in rows]
    if not ids:
        return []
    tags: dict[str, list[str]] = {kernel_id: [] for kernel_id in ids}
    for kernel_id, tag in conn.execute(
        select(kernel_tags.c.kernel_id, kernel_tags.c.tag).where(kernel_tags.c.kernel_id.in_(ids))
    ):
        tags[kernel_id].append(tag)
    report_rows = conn.execute(
        select(validation_reports.c.kernel_id, validation_reports.c.report).where(
            validation_reports.c.kernel_id.in_(ids)
        )
    )
    reports: dict[str, Any] = {kernel_id: report for kernel_id, report in report_rows}
    return [kernel_to_proto(row, tags=tags[row["kernel_id"]], report=reports.get(row["kernel_id"])) for row in rows]


def kernel_query_conditions(query: kernel_pb2.KernelQuery) -> list[ColumnElement[bool]]:
    """SQL conditions for a KernelQuery. Without a status filter REJECTED kernels are left out:
    they are never served by queries unless asked for by status."""
    c = kernels.c
    conditions: list[ColumnElement[bool]] = []
    if query.blueprint_id:
        conditions.append(c.blueprint_id == query.blueprint_id)
    if query.status:
        conditions.append(c.status == query.status)
    else:
        conditions.append(c.status != kernel_pb2.KERNEL_STATUS_REJECTED)
    if query.pipeline:
        conditions.append(c.pipeline == query.pipeline)
    for tag in sorted(set(query.tags_all)):
        conditions.append(exists().where(kernel_tags.c.kernel_id == c.kernel_id, kernel_tags.c.tag == tag))
    if query.input_kind:
        conditions.append(c.input_kind == query.input_kind)
    if query.input_shape.dims:
        conditions.append(c.input_shape == shape_key(query.input_shape.dims))
    if query.growth_kind:
        conditions.append(c.growth_kind == query.growth_kind)
    if query.output_shape.dims:
        conditions.append(c.output_shape == shape_key(query.output_shape.dims))
    if query.max_parameter_count:
        conditions.append(c.parameter_count <= query.max_parameter_count)
    if query.template_id:
        conditions.append(c.template_id == query.template_id)
    if query.device_kind:
        # Targets are "<kind>_<detail>" (cpu_x86_64, cuda_sm80); the kind is validated, no wildcard in it.
        conditions.append(c.hardware_target.startswith(f"{query.device_kind}_"))
    return conditions


def query_kernel_rows(
    conn: Connection, query: kernel_pb2.KernelQuery, *, offset: int, limit: int
) -> tuple[list[Row], bool, int]:
    """One page of matches, newest first, whether more follow, and the total over all pages."""
    conditions = kernel_query_conditions(query)
    total = conn.execute(select(func.count()).select_from(kernels).where(*conditions)).scalar_one()
    newest_first = (kernels.c.create_us.desc(), kernels.c.kernel_id.desc())
    ordered = select(kernels).where(*conditions).order_by(*newest_first)
    rows, more = _page(conn, ordered, offset, limit)
    return rows, more, int(total)


def _page(conn: Connection, query: Select[Any], offset: int, limit: int) -> tuple[list[Row], bool]:
    rows: list[Row] = list(conn.execute(query.offset(offset).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit

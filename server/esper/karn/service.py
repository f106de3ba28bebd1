"""Karn, the blueprint architect: serves the template catalog and collects field reports."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from esper.karn.catalog import TemplateCatalog
from esper.karn.config import KarnConfig
from esper.karn.requests import (
    check_get_template,
    check_list_templates,
    check_query_templates,
    check_submit_field_reports,
)
from esper.leyline.v1 import control_pb2, karn_pb2
from esper.paging import encode_page_token

logger = logging.getLogger(__name__)


class KarnService:
    """The in-process Karn (implements KarnServiceApi). Safe to call from several threads."""

    def __init__(self, catalog: TemplateCatalog, config: KarnConfig | None = None) -> None:
        self._catalog = catalog
        self._config = config or KarnConfig()
        self._reports: OrderedDict[str, control_pb2.FieldReport] = OrderedDict()
        self._reports_lock = threading.Lock()

    @classmethod
    def default(cls, config: KarnConfig | None = None) -> KarnService:
        """Karn over the built-in tiered catalog."""
        return cls(TemplateCatalog.default(), config)

    def list_templates(self, request: karn_pb2.ListTemplatesRequest) -> karn_pb2.ListTemplatesResponse:
        page = check_list_templates(request, self._config)
        matching = self._catalog.list_templates(
            tier=request.tier, tag=request.tag, input_kind=request.input_kind, growth_kind=request.growth_kind
        )
        templates = matching[page.offset : page.offset + page.page_size]
        next_offset = page.offset + len(templates)
        next_token = encode_page_token(next_offset, page.fingerprint) if next_offset < len(matching) else ""
        return karn_pb2.ListTemplatesResponse(templates=templates, next_page_token=next_token, total_size=len(matching))

    def get_template(self, request: karn_pb2.GetTemplateRequest) -> karn_pb2.GetTemplateResponse:
        template_id = check_get_template(request)
        return karn_pb2.GetTemplateResponse(template=self._catalog.get_template(template_id))

    def query_templates(self, request: karn_pb2.QueryTemplatesRequest) -> karn_pb2.QueryTemplatesResponse:
        query = check_query_templates(request, self._config)
        templates = self._catalog.query(
            input_kind=query.input_kind,
            input_shape=query.input_shape,
            tiers=query.tiers,
            tags_all=query.tags_all,
            max_parameter_estimate=query.max_parameter_estimate,
            limit=query.limit,
            growth_kind=query.growth_kind,
            output_shape=query.output_shape,
        )
        return karn_pb2.QueryTemplatesResponse(templates=templates)

    def submit_field_reports(self, request: karn_pb2.SubmitFieldReportsRequest) -> karn_pb2.SubmitFieldReportsResponse:
        check_submit_field_reports(request, self._config)
        accepted = duplicates = 0
        with self._reports_lock:
            for report in request.reports:
                if report.report_id in self._reports:
                    duplicates += 1
                    continue
                stored = control_pb2.FieldReport()
                stored.CopyFrom(report)
                self._reports[report.report_id] = stored
                accepted += 1
            while len(self._reports) > self._config.max_field_reports:
                self._reports.popitem(last=False)
        if accepted:
            logger.debug("recorded %d field reports (%d duplicates)", accepted, duplicates)
        return karn_pb2.SubmitFieldReportsResponse(accepted_count=accepted, duplicate_count=duplicates)

    def field_reports(self) -> list[control_pb2.FieldReport]:
        """Recorded reports, oldest first (at most `max_field_reports`)."""
        with self._reports_lock:
            return [_copy(report) for report in self._reports.values()]


def _copy(report: control_pb2.FieldReport) -> control_pb2.FieldReport:
    copy = control_pb2.FieldReport()
    copy.CopyFrom(report)
    return copy

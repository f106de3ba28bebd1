"""What Karn offers, as a protocol: the in-process KarnService and the remote KarnClient both fit it."""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import karn_pb2


class KarnApi(Protocol):
    """The KarnService rpcs, one method each, proto request in and proto response out."""

    def list_templates(self, request: karn_pb2.ListTemplatesRequest) -> karn_pb2.ListTemplatesResponse:
        """One page of templates ordered by id, optionally filtered by tier, tag and input kind."""
        ...

    def get_template(self, request: karn_pb2.GetTemplateRequest) -> karn_pb2.GetTemplateResponse:
        """One template; NotFound (TEMPLATE_NOT_FOUND) if no template has that id."""
        ...

    def query_templates(self, request: karn_pb2.QueryTemplatesRequest) -> karn_pb2.QueryTemplatesResponse:
        """Templates that fit a site, fewest parameters first."""
        ...

    def submit_field_reports(self, request: karn_pb2.SubmitFieldReportsRequest) -> karn_pb2.SubmitFieldReportsResponse:
        """Record adaptation outcomes; duplicates by report_id are counted, not stored."""
        ...

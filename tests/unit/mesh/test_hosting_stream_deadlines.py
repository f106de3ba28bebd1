"""host()'s stream deadlines are checked against the descriptor at start-up.

That a stalled reader is ended with DEADLINE_EXCEEDED is shown against a real Urza in
tests/security/test_stalled_downloads.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from esper.leyline.v1.services import URZA_SERVICE
from esper.mesh.hosting import host


class AnyUrza:
    """Answers every domain method name (host() only looks them up)."""

    def __getattr__(self, name: str) -> Any:
        return lambda request: None


def test_a_deadline_on_a_streaming_rpc_is_hosted() -> None:
    registration = host(URZA_SERVICE.bind(AnyUrza()), stream_deadlines={"DownloadKernel": 1.0})  # type: ignore[arg-type]
    assert registration.service_name == "esper.leyline.v1.UrzaService"


def test_a_deadline_for_an_unknown_rpc_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="DownloadKernels"):
        host(URZA_SERVICE.bind(AnyUrza()), stream_deadlines={"DownloadKernels": 1.0})  # type: ignore[arg-type]


def test_a_deadline_on_a_unary_rpc_is_refused() -> None:
    with pytest.raises(TypeError, match="GetKernel: a stream deadline needs a server-streaming rpc"):
        host(URZA_SERVICE.bind(AnyUrza()), stream_deadlines={"GetKernel": 1.0})  # type: ignore[arg-type]

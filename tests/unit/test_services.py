"""Every rpc in the descriptor pool has a domain method; servicers and clients come from the descriptors."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from google.protobuf.descriptor import ServiceDescriptor

from esper.karn.service import KarnService
from esper.kasmina.operator import KasminaOperator
from esper.leyline.v1 import karn_pb2, services
from esper.mesh.hosting import host, rpc_method_name
from esper.nissa.service import NissaService
from esper.simic.service import SimicService
from esper.tamiyo.bus import PublishingTamiyo
from esper.tamiyo.controller import TamiyoController
from esper.tezzeret.service import TezzeretService
from esper.tolaria.kasmina_router import KasminaRouter
from esper.tolaria.runs import RunManager
from esper.urabrask.service import UrabraskService
from esper.urza.hub import UrzaHub

GENERATED = Path(__file__).resolve().parents[2] / "generated" / "esper" / "leyline" / "v1"

# Each service and the domain classes that are hosted as it.
DOMAIN: dict[str, tuple[type, ...]] = {
    "esper.leyline.v1.KarnService": (KarnService,),
    "esper.leyline.v1.KasminaService": (KasminaOperator, KasminaRouter),
    "esper.leyline.v1.NissaService": (NissaService,),
    "esper.leyline.v1.SimicService": (SimicService,),
    "esper.leyline.v1.TamiyoService": (TamiyoController, PublishingTamiyo),
    "esper.leyline.v1.TezzeretService": (TezzeretService,),
    "esper.leyline.v1.TolariaService": (RunManager,),
    "esper.leyline.v1.UrabraskService": (UrabraskService,),
    "esper.leyline.v1.UrzaService": (UrzaHub,),
}


def _pool_services() -> dict[str, ServiceDescriptor]:
    """Every service of every Leyline file, loaded into the default descriptor pool."""
    found: dict[str, ServiceDescriptor] = {}
    for path in sorted(GENERATED.glob("*_pb2.py")):
        module = importlib.import_module(f"esper.leyline.v1.{path.stem}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return found


POOL = _pool_services()


def test_the_walk_sees_the_services() -> None:
    assert len(POOL) >= 9 and "esper.leyline.v1.UrzaService" in POOL


def test_every_service_in_the_pool_has_domain_classes() -> None:
    assert sorted(POOL) == sorted(DOMAIN)


@pytest.mark.parametrize("name", sorted(POOL))
def test_every_rpc_has_a_domain_method(name: str) -> None:
    missing = [
        f"{cls.__name__}.{rpc_method_name(method.name)}"
        for cls in DOMAIN[name]
        for method in POOL[name].methods
        if not callable(getattr(cls, rpc_method_name(method.name), None))
    ]
    assert missing == []


def test_the_generated_types_cover_the_pool() -> None:
    # Stale generated code (a .proto changed without `make proto`) fails here too.
    assert sorted(service.full_name for service in services.SERVICES) == sorted(POOL)
    for service in services.SERVICES:
        calls = getattr(services, f"{service.descriptor.name}Calls")
        api = getattr(services, f"{service.descriptor.name}Api")
        for method in service.descriptor.methods:
            assert callable(getattr(calls, rpc_method_name(method.name)))
            assert callable(getattr(api, rpc_method_name(method.name)))


def test_rpc_names_become_snake_case_methods() -> None:
    assert [rpc_method_name(n) for n in ("GetKernel", "ListValidationReports", "Step", "GetRunSummary")] == [
        "get_kernel",
        "list_validation_reports",
        "step",
        "get_run_summary",
    ]


def test_a_domain_without_a_method_is_refused_at_start_naming_the_rpc() -> None:
    class HalfKarn:
        def list_templates(self, request: karn_pb2.ListTemplatesRequest) -> karn_pb2.ListTemplatesResponse:
            return karn_pb2.ListTemplatesResponse()

    with pytest.raises(TypeError, match=r"get_template\(\) for rpc esper.leyline.v1.KarnService/GetTemplate"):
        host(services.KARN_SERVICE.bind(HalfKarn()))  # type: ignore[arg-type]


def test_thread_choices_must_name_real_rpcs() -> None:
    karn = KarnService.default()
    with pytest.raises(ValueError, match="NoSuchRpc"):
        host(services.KARN_SERVICE.bind(karn), on_loop=["NoSuchRpc"])
    registration = host(services.KARN_SERVICE.bind(karn), on_loop=["GetTemplate"])
    assert registration.service_name == "esper.leyline.v1.KarnService" and registration.domain is karn

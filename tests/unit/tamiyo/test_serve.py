"""`esper serve tamiyo` arguments and what it hosts (no server is started)."""

from __future__ import annotations

import pytest

from esper.cli.main import build_parser
from esper.leyline.v1.services import TAMIYO_SERVICE
from esper.tamiyo.controller import TamiyoController
from esper.tamiyo.serve import TAMIYO


def test_serve_tamiyo_hosts_the_tamiyo_service_with_an_urza_directory() -> None:
    args = build_parser().parse_args(["serve", "tamiyo", "--urza", "127.0.0.1:1", "--conservative"])
    assert args.serve_target is TAMIYO
    served = args.serve_target.build(args)
    try:
        [registration] = served.registrations
        assert registration.service_name == TAMIYO_SERVICE.full_name == "esper.leyline.v1.TamiyoService"
        assert isinstance(registration.domain, TamiyoController)
        assert served.close is not None
    finally:
        if served.close is not None:
            served.close()


def test_serve_tamiyo_without_urza_or_nats_runs_nothing_beside_its_rpcs() -> None:
    args = build_parser().parse_args(["serve", "tamiyo"])
    assert args.urza is None and args.simic is None and not args.conservative
    served = args.serve_target.build(args)
    assert served.background == ()
    if served.close is not None:
        served.close()


def test_serve_tamiyo_starts_with_the_policy_it_is_given() -> None:
    from esper.leyline.v1 import tamiyo_pb2

    args = build_parser().parse_args(["serve", "tamiyo", "--simic", "127.0.0.1:1", "--policy", "heuristic-v1"])
    served = args.serve_target.build(args)
    try:
        status = served.registrations[0].domain.get_status(tamiyo_pb2.GetStatusRequest())
        assert (status.policy_id, status.policy_pinned) == ("heuristic-v1", True)
    finally:
        if served.close is not None:
            served.close()


@pytest.mark.parametrize("deadline", ["0", "-1", "soon"])
def test_bad_urza_deadline_is_a_usage_error(deadline: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "tamiyo", "--urza-deadline", deadline])
    assert raised.value.code == 2
    assert "--urza-deadline" in capsys.readouterr().err

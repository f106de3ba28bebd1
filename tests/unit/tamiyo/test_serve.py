"""`esper serve tamiyo` arguments and what it hosts (no server is started)."""

from __future__ import annotations

import pytest

from esper.cli.main import build_parser
from esper.cli.serve import load_target
from esper.tamiyo.servicer import TAMIYO_SERVICE_NAME, TamiyoServicer


def test_serve_tamiyo_hosts_the_tamiyo_service_with_an_urza_directory() -> None:
    args = build_parser().parse_args(["serve", "tamiyo", "--urza", "127.0.0.1:1", "--conservative"])
    assert args.serve_target is load_target("tamiyo")
    served = args.serve_target.build(args)
    try:
        [registration] = served.registrations
        assert registration.service_name == TAMIYO_SERVICE_NAME == "esper.leyline.v1.TamiyoService"
        assert isinstance(registration.servicer, TamiyoServicer)
        assert served.close is not None
    finally:
        if served.close is not None:
            served.close()


def test_serve_tamiyo_without_clients_still_builds_and_closes() -> None:
    args = build_parser().parse_args(["serve", "tamiyo"])
    assert args.urza is None and args.simic is None and not args.conservative
    served = args.serve_target.build(args)
    assert served.close is not None
    served.close()


def test_serve_tamiyo_starts_with_the_policy_it_is_given() -> None:
    from esper.leyline.v1 import tamiyo_pb2

    args = build_parser().parse_args(["serve", "tamiyo", "--simic", "127.0.0.1:1", "--policy", "heuristic-v1"])
    served = args.serve_target.build(args)
    try:
        servicer = served.registrations[0].servicer
        status = servicer._tamiyo.get_status(tamiyo_pb2.GetStatusRequest())
        assert (status.policy_id, status.policy_pinned) == ("heuristic-v1", True)
    finally:
        assert served.close is not None
        served.close()


@pytest.mark.parametrize("deadline", ["0", "-1", "soon"])
def test_bad_urza_deadline_is_a_usage_error(deadline: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "tamiyo", "--urza-deadline", deadline])
    assert raised.value.code == 2
    assert "--urza-deadline" in capsys.readouterr().err

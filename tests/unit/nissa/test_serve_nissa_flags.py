"""`esper serve nissa` flags: what they build, and bad values refused naming the flag (no server started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from esper.cli.main import build_parser
from esper.errors import UsageError
from esper.leyline.v1.services import NISSA_SERVICE
from esper.nissa.service import NissaService
from esper.nissa.trace_intake import TRACE_SERVICE


def _args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", "nissa", *flags])


def test_flags_parse_with_their_defaults() -> None:
    args = _args("--max-spans", "7", "--forward", "jaeger:4317", "--alert-for", "tamiyo_unavailable=3")
    assert (args.db, args.max_spans, args.forward, args.alert_for) == (
        None,
        7,
        "jaeger:4317",
        ["tamiyo_unavailable=3"],
    )
    assert (args.web_port, args.no_web, args.web_port_file, args.nats, args.mesh) == (0, False, None, None, None)


def test_nissa_builds_both_services_and_the_alert_loop(tmp_path: Path) -> None:
    args = _args("--db", str(tmp_path / "spans.db"), "--no-web", "--alert-interval", "2")
    served = args.serve_target.build(args)
    try:
        assert [r.service_name for r in served.registrations] == [NISSA_SERVICE.full_name, TRACE_SERVICE.full_name]
        assert NISSA_SERVICE.full_name == "esper.leyline.v1.NissaService"
        assert isinstance(served.registrations[0].domain, NissaService)
        assert len(served.background) == 1
        assert (tmp_path / "spans.db").exists()
    finally:
        assert served.close is not None
        served.close()


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--max-spans", "0"], "--max-spans"),
        (["--alert-interval", "0"], "--alert-interval"),
        (["--web-port", "70000"], "--web-port"),
    ],
)
def test_bad_values_are_refused_by_the_parser(flags: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        _args(*flags)
    assert raised.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--forward", "jaeger"], "--forward"),
        (["--alert-for", "no_such_rule=5"], "--alert-for"),
        (["--alert-for", "tamiyo_unavailable=soon"], "--alert-for"),
        (["--db", "mysql://u@h/db"], "--db"),
        (["--web-port-file", "w.port", "--no-web"], "--web-port-file"),
    ],
)
def test_bad_values_fail_the_build_naming_the_flag(flags: list[str], flag: str) -> None:
    args = _args("--db", ":memory:", "--no-web", *flags)
    with pytest.raises(UsageError, match=f"^{flag}"):
        args.serve_target.build(args)

"""`esper serve` argument handling (no server is started)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from esper.cli.main import build_parser, main
from esper.cli.serve import SERVE_TARGETS
from esper.karn.serve import KARN
from esper.mesh.target import ServeTarget


def test_every_registered_name_loads_a_serve_target() -> None:
    assert "karn" in SERVE_TARGETS
    for target in SERVE_TARGETS.values():
        assert isinstance(target, ServeTarget)


def test_unknown_name_is_refused_listing_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["serve", "no_such_subsystem"])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "no_such_subsystem" in error
    assert all(name in error for name in SERVE_TARGETS)


def test_common_and_subsystem_flags_parse() -> None:
    argv = ["serve", "karn", "--port", "0", "--port-file", "/tmp/k.port", "--host", "::1"]
    argv += ["--max-field-reports", "7"]
    args = build_parser().parse_args(argv)
    assert (args.serve_name, args.port, args.port_file, args.host, args.max_field_reports) == (
        "karn",
        0,
        Path("/tmp/k.port"),
        "::1",
        7,
    )
    assert args.serve_target is KARN


@pytest.mark.parametrize(
    "flags",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--port", "x"],
        ["--grace-seconds", "-1"],
        ["--max-field-reports", "0"],
    ],
)
def test_bad_flags_are_usage_errors(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "karn", *flags])
    assert raised.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_karn_target_builds_the_karn_service() -> None:
    args = build_parser().parse_args(["serve", "karn"])
    served = args.serve_target.build(args)
    assert [r.service_name for r in served.registrations] == ["esper.leyline.v1.KarnService"]


def test_the_cli_hides_library_deprecation_notices_and_nothing_else() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit):
            main(["serve", "karn", "--port", "not-a-port"])
        warnings.warn("torch deprecates something", FutureWarning, stacklevel=1)
        warnings.warn("something a user should see", UserWarning, stacklevel=1)
    assert [type(warning.message) for warning in caught] == [UserWarning]

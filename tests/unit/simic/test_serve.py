"""`esper serve simic`: arguments and what it hosts (no server is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.cli.main import build_parser
from esper.errors import UsageError
from esper.leyline.v1.services import SIMIC_SERVICE
from esper.simic.service import SimicService


def test_serve_simic_without_nats_hosts_simic_over_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "simic", "--data-dir", str(tmp_path / "data")])
    served = args.serve_target.build(args)
    try:
        [registration] = served.registrations
        assert registration.service_name == SIMIC_SERVICE.full_name == "esper.leyline.v1.SimicService"
        assert isinstance(registration.domain, SimicService)
        assert served.background == ()
        assert (tmp_path / "data" / "simic.db").is_file()
    finally:
        assert served.close is not None
        served.close()


def test_serve_simic_takes_a_database_url(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "reports.db"
    args = build_parser().parse_args(["serve", "simic", "--db", f"sqlite:///{database}"])
    served = args.serve_target.build(args)
    assert served.close is not None
    served.close()
    assert database.is_file()


def test_a_bus_secret_without_nats_is_a_usage_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"0123456789abcdef")
    args = build_parser().parse_args(["serve", "simic", "--data-dir", str(tmp_path), "--bus-secret-file", str(secret)])
    with pytest.raises(UsageError, match="--nats"):
        args.serve_target.build(args)


def test_a_short_bus_secret_is_a_usage_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"short")
    args = build_parser().parse_args(
        [
            "serve",
            "simic",
            "--data-dir",
            str(tmp_path),
            "--nats",
            "nats://127.0.0.1:1",
            "--bus-secret-file",
            str(secret),
        ]
    )
    with pytest.raises(UsageError, match="hmac_secret"):
        args.serve_target.build(args)

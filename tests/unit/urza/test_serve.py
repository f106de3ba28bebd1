"""`esper serve urza` builds a hub from its flags (no server is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.cli.main import build_parser
from esper.leyline.v1.services import URZA_SERVICE
from esper.urza.hub import UrzaHub


def test_flags_choose_database_and_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[UrzaHub] = []
    real_open = UrzaHub.open

    def spy(config: object, **options: object) -> UrzaHub:
        hub = real_open(config, **options)  # type: ignore[arg-type]
        opened.append(hub)
        return hub

    monkeypatch.setattr(UrzaHub, "open", staticmethod(spy))
    args = build_parser().parse_args(
        ["serve", "urza", "--db", f"sqlite:///{tmp_path / 'meta.db'}", "--store", str(tmp_path / "objects")]
    )
    served = args.serve_target.build(args)
    (registration,) = served.registrations
    assert registration.service_name == URZA_SERVICE.full_name
    assert isinstance(registration.domain, UrzaHub)
    (hub,) = opened
    assert hub.config.database_url == f"sqlite:///{tmp_path / 'meta.db'}"
    assert hub.config.store == str(tmp_path / "objects")
    assert (tmp_path / "meta.db").exists()
    served.close()


def test_s3_credentials_come_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    captured: list[object] = []

    def fake_open(config: object, **options: object) -> object:
        captured.append(config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(UrzaHub, "open", staticmethod(fake_open))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    args = build_parser().parse_args(
        [
            "serve",
            "urza",
            "--data-dir",
            str(tmp_path),
            "--store",
            "s3://bucket/prefix",
        ]
    )
    with pytest.raises(RuntimeError, match="stop here"):
        args.serve_target.build(args)
    (config,) = captured
    assert (config.s3_access_key, config.s3_secret_key) == ("from-env", "secret-from-env")  # type: ignore[attr-defined]
    assert config.s3_endpoint_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    assert config.database_url == f"sqlite:///{tmp_path / 'urza.db'}"  # type: ignore[attr-defined]


def test_no_secret_can_be_given_on_the_command_line() -> None:
    for flag in ("--s3-access-key", "--s3-secret-key"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "urza", flag, "x"])

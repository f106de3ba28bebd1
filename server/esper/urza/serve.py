"""`esper serve urza`: the UrzaService server over SQLite/PostgreSQL and a folder/S3 store.

Imported when the CLI parser is built, so heavy imports wait for `build`. This is
the entry point, the one place that reads the standard AWS_* variables.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from esper.home import default_help, state_dir
from esper.mesh.target import Served, ServeTarget
from esper.trust.flags import add_trusted_signers_argument, trusted_signers
from esper.urza.config import DOWNLOAD_DEADLINE_SECONDS

if TYPE_CHECKING:
    from esper.leyline.v1.services import UrzaServiceApi
    from esper.mesh.server import ServiceRegistration


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder for the default SQLite file and artifact folder (default: {default_help('urza')})",
    )
    parser.add_argument(
        "--db",
        default="",
        metavar="URL",
        help="metadata database: sqlite:///FILE or postgresql+psycopg://USER:PASS@HOST:PORT/DB "
        "(default: SQLite in the data dir)",
    )
    parser.add_argument(
        "--store",
        default="",
        metavar="DIR|s3://BUCKET[/PREFIX]",
        help="artifact store: a folder or an S3 bucket (default: a folder in the data dir)",
    )
    parser.add_argument(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3 or AWS)",
    )
    parser.add_argument("--s3-region", default=None, help="S3 region (default: $AWS_REGION or us-east-1)")
    # S3 credentials come from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY only: a flag would show in `ps`.
    add_trusted_signers_argument(parser, role="are stored (unsigned or other uploads are refused)")
    parser.add_argument(
        "--blueprint-quota",
        type=int,
        default=1000,
        metavar="N",
        help="new blueprints each mesh identity may submit per quota window (default: 1000)",
    )
    parser.add_argument(
        "--blueprint-quota-window",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="the window over which --blueprint-quota refills (default: 3600)",
    )
    parser.add_argument(
        "--download-deadline",
        type=float,
        default=DOWNLOAD_DEADLINE_SECONDS,
        metavar="SECONDS",
        help=f"a kernel download taking longer is ended (default: {DOWNLOAD_DEADLINE_SECONDS:g})",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.urza.config import UrzaConfig
    from esper.urza.hub import UrzaHub

    env = os.environ
    config = UrzaConfig(
        data_dir=str(args.data_dir or state_dir("urza")),
        database_url=args.db,
        store=args.store,
        s3_endpoint_url=args.s3_endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        s3_access_key=env.get("AWS_ACCESS_KEY_ID"),
        s3_secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
        s3_region=args.s3_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        blueprint_quota=args.blueprint_quota,
        blueprint_quota_window_seconds=args.blueprint_quota_window,
    )
    hub = UrzaHub.open(config, trust=trusted_signers(args))
    return Served(
        registrations=[urza_registration(hub, download_deadline_seconds=args.download_deadline)], close=hub.close
    )


def urza_registration(
    hub: UrzaServiceApi, *, download_deadline_seconds: float = DOWNLOAD_DEADLINE_SECONDS
) -> ServiceRegistration:
    """UrzaService over `hub`; a kernel download ends with DEADLINE_EXCEEDED after `download_deadline_seconds`."""
    from esper.leyline.v1.services import URZA_SERVICE
    from esper.mesh.hosting import host

    return host(URZA_SERVICE.bind(hub), stream_deadlines={"DownloadKernel": download_deadline_seconds})


URZA = ServeTarget(
    help="Urza: blueprints, kernel artifacts and the compile/validation queues (UrzaService)",
    build=_build,
    add_arguments=_add_arguments,
)

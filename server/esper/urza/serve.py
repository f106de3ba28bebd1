"""`esper serve urza`: the UrzaService server over SQLite/PostgreSQL and a folder/S3 store.

Imported when the CLI parser is built, so heavy imports wait for `build`. This is
the entry point, the one place that reads the standard AWS_* variables.
"""

from __future__ import annotations

import argparse
import os

from esper.home import default_help, state_dir
from esper.mesh.target import Served, ServeTarget


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
    parser.add_argument(
        "--s3-access-key",
        default=None,
        help="S3 access key (default: $AWS_ACCESS_KEY_ID; prefer the variable)",
    )
    parser.add_argument(
        "--s3-secret-key",
        default=None,
        help="S3 secret key (default: $AWS_SECRET_ACCESS_KEY; prefer the variable, flags show in `ps`)",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.leyline.v1.services import URZA_SERVICE
    from esper.mesh.hosting import host
    from esper.urza.config import UrzaConfig
    from esper.urza.hub import UrzaHub

    env = os.environ
    config = UrzaConfig(
        data_dir=str(args.data_dir or state_dir("urza")),
        database_url=args.db,
        store=args.store,
        s3_endpoint_url=args.s3_endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        s3_access_key=args.s3_access_key or env.get("AWS_ACCESS_KEY_ID"),
        s3_secret_key=args.s3_secret_key or env.get("AWS_SECRET_ACCESS_KEY"),
        s3_region=args.s3_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    hub = UrzaHub.open(config)
    return Served(registrations=[host(URZA_SERVICE.bind(hub))], close=hub.close)


URZA = ServeTarget(
    help="Urza: blueprints, kernel artifacts and the compile/validation queues (UrzaService)",
    build=_build,
    add_arguments=_add_arguments,
)

"""`esper serve nissa`: the NissaService server (health and reflection; its rpcs come with Nissa's issue).

Imported when the CLI parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse

from esper.cli.serve import Served, ServeTarget


def _build(args: argparse.Namespace) -> Served:
    del args
    from esper.nissa.service import NissaService
    from esper.nissa.servicer import nissa_registration

    return Served(registrations=[nissa_registration(NissaService())])


NISSA = ServeTarget(
    help="Nissa: observability, alerts and run summaries; rpcs not built yet (NissaService)",
    build=_build,
)

"""What the local-mesh tests share: the `esper` command, the fast config, run folders, Simic's stored reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from esper.trust.identity import TlsIdentity
from tests.support.waiting import eventually

ESPER = [sys.executable, "-m", "esper.cli.main"]
TIMEOUT = 600


def esper(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*ESPER, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check and done.returncode != 0:
        raise AssertionError(f"esper {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def fast_config(root: Path, assets: str, **tamiyo: Any) -> Path:
    """One template, a short lifecycle and an eager Tamiyo: a seed grows within six epochs.

    `tamiyo` overrides keys of the tamiyo section (the mesh's Tamiyo must be started with the same file).
    """
    config = {
        # The deterministic mode: the mesh run and its embedded twin see the same kernels.
        "assets": {
            "data_dir": str(root / assets),
            "template_ids": ["conv3x3_relu"],
            "pipelines": ["standard"],
            "wait_for_kernels": True,
        },
        "kasmina": {"ramp_steps": 10, "training_min_steps": 5, "stabilization_steps": 5, "fine_tuning_min_steps": 5},
        "tamiyo": {
            "warmup_epochs": 1,
            "patience": 1,
            "min_delta": 0.5,
            "min_epochs_to_finish": 1,
            "min_eval_gain": -1.0,
            "fossilize_min_improvement": 0.0,
            "harm_threshold": 1.0,
            **tamiyo,
        },
    }
    path = root / f"fast-{assets}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def operator_tls(mesh_file: Path) -> TlsIdentity | None:
    """The operator identity of the mesh `esper up` started (None on an --insecure mesh)."""
    from esper.mesh.addresses import load_mesh

    return load_mesh(mesh_file).operator_tls()


def stored_report_ids(
    simic_address: str, run_id: str, *, page_size: int = 1000, tls: TlsIdentity | None = None
) -> list[str]:
    """Every report id Simic stores for the run, paging through ListFieldReports (repeats kept)."""
    from esper.clients import SimicClient
    from esper.clients.base import ClientConfig
    from esper.leyline.v1 import simic_pb2

    found: list[str] = []
    token = ""
    with SimicClient(ClientConfig(address=simic_address, tls=tls)) as simic:
        while True:
            page = simic.list_field_reports(
                simic_pb2.ListFieldReportsRequest(run_id=run_id, page_size=page_size, page_token=token)
            )
            found.extend(report.report_id for report in page.reports)
            token = page.next_page_token
            if not token:
                return found


def wait_for_stored_reports(
    simic_address: str,
    run_id: str,
    expected: int,
    *,
    page_size: int = 1000,
    timeout: float = 60.0,
    tls: TlsIdentity | None = None,
) -> list[str]:
    """The report ids Simic stores for the run once it holds `expected` of them."""
    return eventually(
        lambda: stored_report_ids(simic_address, run_id, page_size=page_size, tls=tls),
        until=lambda found: len(found) >= expected,
        timeout=timeout,
        what=f"{expected} stored field reports of {run_id}",
    )

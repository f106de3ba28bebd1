"""`esper run --mesh FILE`: the same run, trained by the mesh's Tolaria server.

The run is created with CreateRun (the fully resolved config travels as YAML, so
the server trains exactly what `esper run` would), followed through
StreamRunEvents to drive the progress bar, and its run folder is written by the
Tolaria server under its runs root (a server writes nowhere else). On loopback the
command then copies that folder to --out and reads it like an embedded run, and
records the static baseline it trained in the mesh beside it.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from esper.config import EsperConfig, config_to_dict, load_config
from esper.errors import DeadlineExceeded, EsperError, FailedPrecondition, Unavailable
from esper.leyline.v1 import run_pb2, tolaria_pb2
from esper.mesh.addresses import MeshAddresses, load_mesh
from esper.tolaria.session import RunResult, baseline_comparison, new_run_id

logger = logging.getLogger(__name__)

# A stream's deadline covers the whole run; it is renewed (from the next event) when it runs out.
STREAM_SECONDS = 3600.0
_RECONNECTS = 20
_TERMINAL = {run_pb2.RUN_STATUS_SUCCEEDED, run_pb2.RUN_STATUS_FAILED, run_pb2.RUN_STATUS_CANCELLED}
Progress = Callable[[int, str, bool], tuple[Any, Callable[[Any, Any], None]]]


class MeshRuns:
    """Trains runs on the Tolaria server of a mesh file; `train` stands in for the embedded one."""

    def __init__(self, mesh_file: str, progress: Progress) -> None:
        from esper.clients import TolariaClient
        from esper.clients.base import ClientConfig

        self.addresses: MeshAddresses = load_mesh(mesh_file)
        self._client = TolariaClient(
            ClientConfig(
                address=self.addresses.address("tolaria"), deadline_seconds=30.0, tls=self.addresses.operator_tls()
            )
        )
        self._progress = progress

    def close(self) -> None:
        self._client.close()

    def load_policy(self, policy: str) -> None:
        """Have the mesh's Tamiyo decide with `policy` (pinned): an id it or its Simic knows."""
        from esper.clients import TamiyoClient
        from esper.clients.base import ClientConfig
        from esper.leyline.v1 import tamiyo_pb2
        from esper.tamiyo.policies import is_path

        if is_path(policy):
            raise FailedPrecondition(
                f"--policy {policy}: a policy file works embedded; on a mesh name a policy its Tamiyo or "
                "Simic knows (heuristic-v1, gnn-v1, or one `esper policy list --mesh` shows)",
                reason="POLICY_NOT_ON_MESH",
            )
        tamiyo = ClientConfig(
            address=self.addresses.address("tamiyo"), deadline_seconds=60.0, tls=self.addresses.operator_tls()
        )
        with TamiyoClient(tamiyo) as client:
            loaded = client.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id=policy))
        logger.info("the mesh's Tamiyo now decides with %s v%d", loaded.policy_id, loaded.policy_version)

    def check_tamiyo(self, config: EsperConfig, mesh_file: str) -> None:
        """Warn when the mesh's Tamiyo decides with other thresholds than the run's config names."""
        mesh_config = _tamiyo_config_file(mesh_file)
        mesh_tamiyo = load_config(mesh_config).tamiyo if mesh_config else EsperConfig().tamiyo
        # The policy is set with LoadPolicy, not by the mesh's config.
        mesh_tamiyo = dataclasses.replace(mesh_tamiyo, policy_id=config.tamiyo.policy_id)
        if mesh_tamiyo != config.tamiyo:
            print(
                "esper run: warning: the mesh's Tamiyo runs with "
                f"{'the tamiyo section of ' + mesh_config if mesh_config else 'its default thresholds'}, "
                "not this config's tamiyo section; start the mesh with `esper up --config` to match",
                file=sys.stderr,
            )

    def train(self, config: EsperConfig, label: str, *, quiet: bool, resume: bool, baseline_dir: Path | None) -> Any:
        if resume:
            raise FailedPrecondition("--resume is not available with --mesh")
        run_id = new_run_id()
        request = tolaria_pb2.CreateRunRequest(run_id=run_id, config=_run_config(config))
        run = self._client.create_run(request).run
        bar, update = self._progress(config.run.epochs, label, not quiet)
        try:
            run = self._follow(run, update)
        except KeyboardInterrupt:
            self._client.cancel_run(tolaria_pb2.CancelRunRequest(run_id=run_id))
            raise
        finally:
            bar.close()
        if run.status == run_pb2.RUN_STATUS_FAILED:
            raise FailedPrecondition(f"run {run_id} failed on the mesh's Tolaria: {run.error_message}")
        out = _fetch_folder(Path(run.out_dir), Path(str(config.run.require_out())).expanduser().resolve())
        summary = _local_summary(out, run)
        if baseline_dir is not None and (out / "summary.json").exists():
            summary = _record_baseline(out, baseline_dir, summary)
        return RunResult(run_id=run.run_id, out_dir=out, summary=summary)

    def _follow(self, run: run_pb2.Run, update: Callable[[Any, Any], None]) -> run_pb2.Run:
        """Drive `update` with each finished epoch until the run ends; returns the ended run."""
        next_sequence, failures = 1, 0
        while True:
            request = tolaria_pb2.StreamRunEventsRequest(run_id=run.run_id, from_sequence=next_sequence)
            try:
                for response in self._client.stream_run_events(request, timeout=STREAM_SECONDS):
                    event = response.event
                    next_sequence = event.sequence + 1
                    if event.WhichOneof("payload") == "epoch_completed":
                        update(SimpleNamespace(metrics=event.epoch_completed), None)
                    elif event.WhichOneof("payload") == "notice":
                        logger.debug("run %s: %s", run.run_id, event.notice)
            except (Unavailable, DeadlineExceeded) as exc:
                failures += 1
                if failures > _RECONNECTS:
                    raise
                logger.warning("run %s: event stream broke (%s); following again", run.run_id, exc)
                time.sleep(min(5.0, 0.5 * failures))
            run = self._client.get_run(tolaria_pb2.GetRunRequest(run_id=run.run_id)).run
            if run.status in _TERMINAL:
                return run


def _run_config(config: EsperConfig) -> run_pb2.RunConfig:
    """The run as CreateRun takes it; the server picks the folder (<runs root>/<run id>)."""
    resolved = dataclasses.replace(config, run=dataclasses.replace(config.run, out=None))
    return run_pb2.RunConfig(
        dataset=config.run.dataset,
        epochs=config.run.epochs,
        seed=config.run.seed,
        host_width=config.run.host_width or 0,
        static=config.run.static,
        config_yaml=yaml.safe_dump(config_to_dict(resolved), sort_keys=False),
    )


def _fetch_folder(server_folder: Path, out: Path) -> Path:
    """The run folder at `out`, copied from where the server wrote it when that is on this machine;
    the server's path when it is not here either (the summary then comes from the Run)."""
    if server_folder.is_dir() and server_folder.resolve() != out:
        shutil.copytree(server_folder, out, dirs_exist_ok=True)
        return out
    return out if out.is_dir() else server_folder


def _tamiyo_config_file(mesh_file: str) -> str | None:
    import json

    try:
        entry = json.loads(Path(mesh_file).expanduser().read_text(encoding="utf-8")).get("tamiyo")
    except (OSError, ValueError):
        return None
    found = entry.get("config") if isinstance(entry, dict) else None
    return found if isinstance(found, str) and found else None


def _local_summary(out: Path, run: run_pb2.Run) -> dict[str, Any]:
    """summary.json when the run folder is reachable from here, else the Run's RunSummary."""
    from esper.tolaria.runfolder import RunFolder, message_to_json

    if (out / "summary.json").exists():
        found = RunFolder(out).read_summary()
        if found is not None:
            return found
    return {
        "run_id": run.run_id,
        "dataset": run.config.dataset,
        "static": run.config.static,
        **message_to_json(run.summary),
    }


def _record_baseline(out: Path, baseline_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """What an embedded run records of its baseline: in summary.json and as report.png's dashed line."""
    from esper.tolaria.run_report import render_report
    from esper.tolaria.runfolder import RunFolder

    baseline = RunFolder(baseline_dir).read_summary()
    if baseline is None:
        return summary
    summary = {**summary, **baseline_comparison(summary, baseline, baseline_dir)}
    try:
        RunFolder(out).write_summary(summary)
        render_report(out, baseline_metrics=baseline_dir)
    except (OSError, EsperError) as exc:
        logger.warning("could not record the baseline in %s: %s", out, exc)
    return summary

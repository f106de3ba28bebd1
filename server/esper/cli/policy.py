"""`esper policy list|show|train`: Tamiyo's policies, built in, shipped and trained by Simic.

Without --mesh (or --simic) the commands use the local replay store that `esper run`
records into (--experience-dir, default $ESPER_HOME/simic, else ./.esper/simic); with
them, the mesh's Simic. `train` runs a Simic training job (behaviour cloning from heuristic-v1's
recorded decisions, or PPO on episodes), which gates the result on the validation
suite before publishing it; a running Tamiyo that follows Simic's updates then picks
it up between two boundaries.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from esper.cli.common import add_json_flag, print_json
from esper.errors import UsageError

_ALGORITHMS = {"bc": "TRAINING_ALGORITHM_BEHAVIOUR_CLONING", "ppo": "TRAINING_ALGORITHM_PPO"}


def add_experience_argument(parser: argparse.ArgumentParser) -> None:
    from esper.home import default_help

    parser.add_argument(
        "--experience-dir",
        default=None,
        metavar="DIR",
        help=f"local replay store and policies of embedded runs (default: {default_help('simic')})",
    )


def experience_dir(args: argparse.Namespace) -> str:
    """The local replay store the arguments name: --experience-dir, or Simic's state folder."""
    from pathlib import Path

    from esper.home import state_dir

    return str(Path(args.experience_dir).expanduser() if args.experience_dir else state_dir("simic"))


def _add_simic_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--mesh", metavar="FILE", help="use the Simic of the mesh in FILE (a mesh.json from esper up)")
    where.add_argument("--simic", metavar="ADDR", help="use the Simic server at host:port")
    add_experience_argument(parser)


@contextmanager
def simic_for(args: argparse.Namespace, *, gate_suite: str = "validation") -> Iterator[Any]:
    """The Simic the arguments name: a client, or the local replay store's SimicService."""
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.WARNING)
    address, tls = args.simic, None
    if args.mesh:
        from esper.mesh.addresses import load_mesh

        # The mesh's operator identity: every Simic rpc the CLI calls allows the operator.
        mesh = load_mesh(args.mesh)
        address, tls = mesh.address("simic"), mesh.operator_tls()
    if address:
        from esper.clients import SimicClient
        from esper.clients.base import ClientConfig

        client = SimicClient(ClientConfig(address=address, deadline_seconds=30.0, tls=tls))
        try:
            yield client
        finally:
            client.close()
        return
    from esper.simic.config import TrainingConfig
    from esper.simic.embedded import local_simic

    training = TrainingConfig(gate_suite=gate_suite, workers=getattr(args, "workers", 1))
    simic = local_simic(experience_dir(args), training=training)
    try:
        yield simic
    finally:
        simic.close()


def policy_entries(simic: Any) -> list[dict[str, Any]]:
    """Every policy a run can name: heuristic-v1, the shipped ones, then Simic's newest first."""
    from esper.config import EsperConfig
    from esper.leyline.v1 import simic_pb2
    from esper.tamiyo.artifact import read_policy
    from esper.tamiyo.policies import BUNDLED_DIR, bundled_policy_ids

    default = EsperConfig().tamiyo.policy_id
    entries: list[dict[str, Any]] = [
        {"policy_id": "heuristic-v1", "kind": "heuristic", "source": "built in", "version": 0}
    ]
    for policy_id in bundled_policy_ids():
        card = read_policy(BUNDLED_DIR / policy_id).card
        entries.append(
            {
                "policy_id": policy_id,
                "kind": "learned",
                "source": "shipped",
                "version": int(card.get("version", 0)),
                "feature_schema_version": int(card.get("feature_schema_version", 0)),
            }
        )
    if simic is not None:
        token = ""
        while True:
            page = simic.list_policies(simic_pb2.ListPoliciesRequest(page_size=100, page_token=token))
            for update in page.policies:
                entries.append(
                    {
                        "policy_id": update.policy_id,
                        "kind": "learned",
                        "source": "simic",
                        "version": update.version,
                        "feature_schema_version": update.feature_schema_version,
                        "parent_policy_id": update.parent_policy_id,
                        "metrics": dict(update.metrics),
                    }
                )
            token = page.next_page_token
            if not token:
                break
    for entry in entries:
        entry["default"] = entry["policy_id"] == default
    return entries


def _list(args: argparse.Namespace) -> int:
    with simic_for(args) as simic:
        entries = policy_entries(simic)
    if args.json:
        print_json(entries)
        return 0
    print(f"{'POLICY':<24} {'KIND':<10} {'SOURCE':<9} {'VERSION':>7}  DEFAULT")
    for entry in entries:
        mark = "*" if entry["default"] else ""
        print(f"{entry['policy_id']:<24} {entry['kind']:<10} {entry['source']:<9} {entry['version']:>7}  {mark}")
    return 0


def describe_policy(policy_id: str, simic: Any) -> dict[str, Any]:
    """What is known of one policy: kind, source, card (learned) or thresholds (heuristic)."""
    import dataclasses

    from esper.config import EsperConfig
    from esper.errors import NotFound
    from esper.leyline.v1 import simic_pb2
    from esper.tamiyo.policies import find_artifact, is_path

    if policy_id == "heuristic-v1":
        return {
            "policy_id": policy_id,
            "kind": "heuristic",
            "source": "built in",
            "description": "threshold rules over the state packet and telemetry (esper.tamiyo.policy)",
            "config": dataclasses.asdict(EsperConfig().tamiyo),
        }
    artifact = None
    source = "path" if is_path(policy_id) else "shipped"
    artifact = find_artifact(policy_id)
    metrics: dict[str, float] = {}
    if artifact is None and simic is not None:
        try:
            update = simic.get_policy(simic_pb2.GetPolicyRequest(policy_id=policy_id)).policy
        except NotFound:
            update = None
        if update is not None:
            source, metrics = "simic", dict(update.metrics)
            return {
                "policy_id": policy_id,
                "kind": "learned",
                "source": source,
                "version": update.version,
                "sha256": update.sha256,
                "metrics": metrics,
                "card": json.loads(update.card_json) if update.card_json else {},
            }
    if artifact is None:
        raise NotFound(f"policy {policy_id!r} not found (built in, shipped or in Simic)", reason="POLICY_NOT_FOUND")
    return {
        "policy_id": artifact.policy_id,
        "kind": "learned",
        "source": source,
        "version": artifact.version,
        "sha256": artifact.sha256,
        "card": artifact.card,
    }


def _show(args: argparse.Namespace) -> int:
    with simic_for(args) as simic:
        described = describe_policy(args.policy_id, simic)
    if args.json:
        print_json(described)
        return 0
    card = described.get("card", {})
    print(f"policy {described['policy_id']}: {described['kind']}, {described['source']}")
    if "version" in described:
        print(f"  version {described['version']}, sha256 {described.get('sha256', '')[:16]}")
    if card:
        architecture = card.get("architecture", {})
        print(f"  architecture: {json.dumps(architecture, sort_keys=True)}")
        print(f"  feature schema: v{card.get('feature_schema_version')}")
        print(f"  recipe: {json.dumps(card.get('recipe', {}), sort_keys=True)}")
        print(f"  data: {json.dumps(card.get('data', {}), sort_keys=True)}")
        print(f"  validation: {json.dumps(card.get('validation', {}), sort_keys=True)}")
    elif described["kind"] == "heuristic":
        print(f"  {described['description']}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from esper.leyline.v1 import simic_pb2
    from esper.simic.training import describe

    request = simic_pb2.TrainPolicyRequest(
        base_policy_id=args.base or "",
        max_steps=args.steps or 0,
        iterations=args.iterations or 0,
        algorithm=_ALGORITHMS[args.algorithm],
        policy_id=args.id or "",
        gate_suite=args.gate_suite or "",
        gate_seeds=args.gate_seeds or 0,
    )
    if args.gate_tolerance is not None:
        request.gate_tolerance = args.gate_tolerance
    if not args.wait and not (args.mesh or args.simic):
        raise UsageError("--no-wait needs --mesh or --simic: a local training job runs in this process")
    with simic_for(args) as simic:
        started = simic.train_policy(request)
        if not args.wait:
            job = simic.get_training_job(simic_pb2.GetTrainingJobRequest(job_id=started.job_id)).job
        else:
            job = _wait(simic, started.job_id, args.timeout, quiet=args.json)
    summary = describe(job)
    if args.json:
        print_json(summary)
    else:
        print(f"job {summary['job_id']}: {summary['status']}")
        if summary["policy_id"]:
            published = "published" if summary["published"] else "not published"
            print(f"policy {summary['policy_id']} ({published})")
        if summary["error"]:
            print(summary["error"])
    failed = job.status == simic_pb2.TRAINING_JOB_STATUS_FAILED
    return 1 if failed else 0


def _wait(simic: Any, job_id: str, timeout: float, *, quiet: bool) -> Any:
    from esper.leyline.v1 import simic_pb2

    deadline = time.monotonic() + timeout
    shown = None
    while True:
        job = simic.get_training_job(simic_pb2.GetTrainingJobRequest(job_id=job_id)).job
        if job.status != shown and not quiet:
            print(f"job {job_id}: {simic_pb2.TrainingJobStatus.Name(job.status)}", file=sys.stderr)
            shown = job.status
        if job.status in (simic_pb2.TRAINING_JOB_STATUS_SUCCEEDED, simic_pb2.TRAINING_JOB_STATUS_FAILED):
            return job
        if time.monotonic() > deadline:
            raise UsageError(f"--timeout: job {job_id} still {simic_pb2.TrainingJobStatus.Name(job.status)}")
        time.sleep(1.0)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="Tamiyo's policies: list, show, train", description=__doc__)
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND")
    commands.required = True

    listing = commands.add_parser("list", help="every policy a run can name, with kind and default")
    _add_simic_arguments(listing)
    add_json_flag(listing)
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="one policy: its card (learned) or thresholds (heuristic)")
    show.add_argument("policy_id", metavar="ID|PATH")
    _add_simic_arguments(show)
    add_json_flag(show)
    show.set_defaults(handler=_show)

    train = commands.add_parser("train", help="train a policy with Simic, gate it, publish it if it passes")
    train.add_argument("--algorithm", choices=sorted(_ALGORITHMS), default="bc", help="bc (default) or ppo")
    train.add_argument("--steps", type=_positive, help="behaviour-cloning gradient steps (default: Simic's)")
    train.add_argument("--iterations", type=_positive, help="PPO iterations (default: Simic's)")
    train.add_argument("--base", metavar="ID", help="policy to start from (default: a fresh network)")
    train.add_argument("--id", metavar="ID", help="id of the new policy (default: simic-<version>)")
    train.add_argument(
        "--gate-suite",
        default=None,
        help="the validation gate's task suite (default: Simic's, 'validation'); 'none' skips the gate and "
        "stores the policy without publishing it",
    )
    train.add_argument("--gate-seeds", type=_positive, help="seeds per gate task (default: Simic's)")
    train.add_argument(
        "--gate-tolerance",
        type=float,
        metavar="POINTS",
        help="publish a candidate whose mean gate score is at most POINTS below the current policy's "
        "(0 to 100; default: Simic's, 0)",
    )
    train.add_argument("--workers", type=_positive, default=1, help="local training only: episodes at once")
    train.add_argument("--no-wait", dest="wait", action="store_false", help="return once the job is accepted")
    train.add_argument("--timeout", type=float, default=7200.0, help="seconds to wait for the job (default: 7200)")
    _add_simic_arguments(train)
    add_json_flag(train)
    train.set_defaults(handler=_train)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value

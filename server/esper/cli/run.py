"""`esper run`: a training run, embedded by default; writes the run folder.

By default a morphogenetic run first trains the same host statically (the
baseline) into OUT/baseline, so the summary can say whether growth beat it.
`--nproc N` (or `torchrun --standalone --nproc-per-node N -m esper run ...`) trains
data-parallel in N processes on this machine; rank 0 writes the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from esper.cli.common import add_json_flag, print_json, process_tracing
from esper.cli.policy import add_experience_argument, experience_dir
from esper.errors import UsageError
from esper.tolaria.config import DEVICES


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "run.dataset": args.dataset,
        "run.epochs": args.epochs,
        "run.seed": args.seed,
        "run.host": args.host,
        "run.host_width": args.host_width,
        "run.host_depth": args.host_depth,
        "run.device": args.device,
        "run.out": args.out,
        "run.static": True if args.static else None,
        "tamiyo.policy_id": args.policy,
        "tamiyo.max_parameters": args.max_params,
    }


def _progress(total: int, label: str, enabled: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="epoch", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def update(record: Any, history: Any) -> None:
        metrics = record.metrics
        stages = Counter(metrics.seed_stages.values())
        shown = " ".join(f"{name[:4].lower()}:{count}" for name, count in sorted(stages.items()))
        bar.set_postfix_str(
            f"val {metrics.val_metric:.3f}  params {metrics.parameter_count:,}" + (f"  {shown}" if shown else "")
        )
        if bar.n >= bar.total:  # epochs a rollback discarded are trained again
            bar.total = bar.n + 1
        bar.update(1)

    return bar, update


def _trainer(ranks: Any, experience_dir: str | None) -> Any:
    """Trains one run in this process: alone, or as one rank of a data-parallel run.

    With `experience_dir`, Tamiyo's transitions are recorded into its replay store.
    """

    def train(config: Any, label: str, *, quiet: bool, resume: bool, baseline_dir: Path | None) -> Any:
        from esper.tolaria.collaborators import embedded_collaborators
        from esper.tolaria.session import run_training

        collaborators: Any = embedded_collaborators
        if experience_dir is not None and not config.run.static:
            from esper.simic.embedded import recording_collaborators

            collaborators = recording_collaborators(embedded_collaborators, experience_dir)
        bar, update = _progress(config.run.epochs, label, enabled=not quiet)
        try:
            return run_training(
                config,
                on_epoch=update,
                resume=resume,
                baseline_dir=baseline_dir,
                collaborators=collaborators,
                ranks=ranks,
            )
        finally:
            bar.close()

    return train


def _launch_ranks(args: argparse.Namespace) -> int:
    """`--nproc N`: this same command in N processes under torchrun (one machine), its exit status."""
    if args.mesh:
        raise UsageError("--nproc: a data-parallel run trains embedded; leave out --mesh")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(args.nproc),
        "-m",
        "esper",
        *_without_nproc(args.command_line),
    ]
    return subprocess.run(command, check=False).returncode


def _without_nproc(command_line: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in command_line:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _join_ranks(args: argparse.Namespace, config: Any) -> Any:
    """This process's rank when torchrun started several, else None."""
    from esper.tolaria.data_parallel import join, launched_by_torchrun
    from esper.tolaria.devices import resolve_device

    if not launched_by_torchrun():
        return None
    if args.mesh:
        raise UsageError("--mesh: a data-parallel run (torchrun) trains embedded; leave out --mesh")
    return join(resolve_device(config.run.device, "run.device"))


def _run(args: argparse.Namespace) -> int:
    from esper.config import load_config

    if args.resume and args.mesh:
        raise UsageError("--resume: a mesh run cannot be resumed; resume it embedded (no --mesh)")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out naming the run folder to continue")
    if not args.verbose:
        # Every transition and decision is in events.jsonl; the terminal shows the progress bar.
        logging.getLogger().setLevel(logging.WARNING)
    if args.nproc is not None and args.nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {args.nproc}")
    config = load_config(args.config, _overrides(args))
    out = config.run.require_out()
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_ranks(args)
    ranks = _join_ranks(args, config)
    # One rank reports; the others train alongside in silence.
    reports = ranks is None or ranks.is_main
    quiet = args.json or args.quiet or not reports
    # Rank 0 decides for every rank, so only it records Tamiyo's transitions.
    experience = experience_dir(args) if args.experience and reports else None
    train, mesh = _trainer(ranks, experience), None
    if args.mesh:
        from esper.cli.mesh_run import MeshRuns

        # The mesh's Tolaria writes under its runs root; the folder is copied here afterwards.
        out = out.expanduser().resolve()
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=str(out)))
        mesh = MeshRuns(args.mesh, _progress)
        if args.policy:
            mesh.load_policy(args.policy)
        mesh.check_tamiyo(config, args.mesh)
        train = mesh.train
    # Embedded, this process is Tolaria; on a mesh it only follows the run Tolaria trains.
    try:
        with process_tracing("esper-cli" if mesh is not None else "tolaria"):
            return _train_and_report(args, config, out, quiet, train, reports=reports)
    finally:
        if mesh is not None:
            mesh.close()
        if ranks is not None:
            ranks.close()


def _train_and_report(
    args: argparse.Namespace, config: Any, out: Path, quiet: bool, train: Any, *, reports: bool = True
) -> int:
    from esper.tolaria.run_report import format_summary
    from esper.tolaria.runfolder import RunFolder

    baseline_dir: Path | None = None
    baseline: dict[str, Any] | None = None
    if not config.run.static and args.baseline and not args.resume:
        baseline_dir = out / "baseline"
        static = dataclasses.replace(config, run=dataclasses.replace(config.run, static=True, out=str(baseline_dir)))
        train(static, "static baseline", quiet=quiet, resume=False, baseline_dir=None)
        baseline = RunFolder(baseline_dir).read_summary() if reports else None
    label = "static" if config.run.static else "esper"
    result = train(config, label, quiet=quiet, resume=args.resume, baseline_dir=baseline_dir)
    if not reports:
        return 0
    if args.json:
        print_json(result.summary)
    else:
        print(format_summary(result.summary, baseline))
        print(f"run folder: {result.out_dir}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="a training run (embedded by default)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        help="digits (default), mnist5k, spirals, products6, npz:PATH, or text / text:PATH "
        "(character-level language modelling; text is the Python standard library's source)",
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, help="one seed makes a run repeatable on the same machine")
    parser.add_argument(
        "--host",
        choices=("auto", "mlp", "cnn", "rescnn", "transformer"),
        help="host architecture (default auto: mlp for features, cnn for images, transformer for text)",
    )
    parser.add_argument(
        "--host-width", type=int, help="hidden width (MLP), channels (CNN, residual CNN) or model width (transformer)"
    )
    parser.add_argument("--host-depth", type=int, help="hidden layers, conv or residual blocks, or transformer blocks")
    parser.add_argument("--device", choices=DEVICES, help="where to train (default auto: CUDA when there is one)")
    parser.add_argument(
        "--max-params",
        type=int,
        help="parameter budget: the model never grows past this many parameters (tamiyo.max_parameters)",
    )
    parser.add_argument("--out", help="the run folder to write")
    parser.add_argument("--config", help="YAML config (unknown keys and wrong types are refused)")
    parser.add_argument("--static", action="store_true", help="train the host with no seeds (the baseline)")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the static baseline trained alongside a morphogenetic run",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--policy",
        metavar="ID|PATH",
        help="Tamiyo's policy: heuristic-v1 (default), gnn-v1 (learned, shipped), a policy trained by Simic "
        "(esper policy list), or a policy file "
        "(embedded only); on a mesh its Tamiyo is told to load it (pinned)",
    )
    add_experience_argument(parser)
    parser.add_argument(
        "--no-experience",
        dest="experience",
        action="store_false",
        help="do not record Tamiyo's transitions into the local replay store",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="data-parallel training in N processes on this machine (torchrun --standalone; gloo on the CPU, "
        "NCCL on CUDA); rank 0 decides for every rank and writes the run folder",
    )
    parser.add_argument(
        "--mesh",
        metavar="FILE",
        help="train on the mesh in FILE (a mesh.json from `esper up`): its Tolaria writes --out",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(parser)
    parser.set_defaults(handler=_run)

"""`esper blueprint ...` and `esper kernel ...`: the asset pipeline, for operators.

Every command talks to a running Urza (`--urza HOST:PORT`) and prints either a
short human-readable view or, with `--json`, machine-readable output.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from esper.cli.common import UsageError, add_json_flag, parse_shape, print_json, urza_client
from esper.errors import DataLoss, InvalidArgument
from esper.fsutil import atomic_write
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2

PIPELINES = {
    "fast": kernel_pb2.COMPILATION_PIPELINE_FAST,
    "standard": kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    "aggressive": kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE,
}
KERNEL_STATUSES = {
    "compiled": kernel_pb2.KERNEL_STATUS_COMPILED,
    "validating": kernel_pb2.KERNEL_STATUS_VALIDATING,
    "validated": kernel_pb2.KERNEL_STATUS_VALIDATED,
    "rejected": kernel_pb2.KERNEL_STATUS_REJECTED,
}


def _enum_name(enum: Any, value: int) -> str:
    """`KERNEL_STATUS_VALIDATED` -> `validated`."""
    name: str = enum.Name(value)
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix).lower()


def kernel_to_dict(kernel: kernel_pb2.KernelArtifact) -> dict[str, Any]:
    report = kernel.validation_report
    return {
        "id": kernel.kernel_id,
        "blueprint_id": kernel.blueprint_id,
        "template_id": kernel.template_id,
        "status": _enum_name(kernel_pb2.KernelStatus, kernel.status),
        "pipeline": _enum_name(kernel_pb2.CompilationPipeline, kernel.pipeline),
        "hardware_target": kernel.hardware_target,
        "sha256": kernel.sha256,
        "size_bytes": kernel.size_bytes,
        "parameter_count": kernel.parameter_count,
        "input_shape": list(kernel.input_shape.dims),
        "growth_kind": _enum_name(blueprint_pb2.GrowthKind, kernel.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH),
        "output_shape": list(kernel.output_shape.dims or kernel.input_shape.dims),
        "tags": list(kernel.tags),
        "latency_ms_mean": report.latency_ms_mean if kernel.HasField("validation_report") else None,
        "failure_reason": report.failure_reason if kernel.HasField("validation_report") else "",
    }


def blueprint_to_dict(
    blueprint: blueprint_pb2.Blueprint, kernels: list[kernel_pb2.KernelArtifact] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": blueprint.blueprint_id,
        "template_id": blueprint.template_id,
        "name": blueprint.name,
        "status": _enum_name(blueprint_pb2.BlueprintStatus, blueprint.status),
        "failure_reason": blueprint.failure_reason,
        "parameter_estimate": blueprint.parameter_estimate,
        "input_shape": list(blueprint.ir.input_shape.dims),
        "output_shape": list(blueprint.ir.output_shape.dims),
        "tags": list(blueprint.tags),
    }
    if kernels is not None:
        view["kernels"] = [kernel_to_dict(kernel) for kernel in kernels]
    return view


def _submit(args: argparse.Namespace) -> int:
    from esper.karn.catalog import TemplateCatalog

    catalog = TemplateCatalog.default()
    shape = parse_shape(args.input_shape, "--input-shape") if args.input_shape else None
    output = parse_shape(args.output_shape, "--output-shape") if args.output_shape else None
    if output is not None and shape is None:
        raise UsageError("--output-shape needs --input-shape")
    template = (
        catalog.instantiate(args.template, shape, output_shape=output)
        if shape is not None
        else catalog.get_template(args.template)
    )
    request = urza_pb2.CreateBlueprintRequest(
        ir=template.ir,
        template_id=template.template_id,
        name=template.name,
        tier=template.tier,
        pipelines=[PIPELINES[name] for name in args.pipeline or ()],
        tags=list(template.tags),
    )
    with urza_client(args) as urza:
        response = urza.create_blueprint(request)
    if args.json:
        print_json({**blueprint_to_dict(response.blueprint), "created": response.created})
    else:
        print(response.blueprint.blueprint_id)
    return 0


def _get(args: argparse.Namespace) -> int:
    with urza_client(args) as urza:
        response = urza.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=args.blueprint_id))
    view = blueprint_to_dict(response.blueprint, list(response.kernels))
    if args.json:
        print_json(view)
        return 0
    print(f"{view['id']}  {view['status']}  template={view['template_id']}  params={view['parameter_estimate']}")
    if view["failure_reason"]:
        print(f"  reason: {view['failure_reason']}")
    for job in response.compile_jobs:
        status = _enum_name(kernel_pb2.CompileJobStatus, job.status)
        error = f"  error: {job.last_error}" if job.last_error else ""
        print(f"  job {job.job_id}: {status} (attempts {job.attempts}/{job.max_attempts}){error}")
    for kernel in view["kernels"]:
        print(f"  kernel {kernel['id']}: {kernel['status']} tags={','.join(kernel['tags']) or '-'}")
    return 0


def _list_kernels(args: argparse.Namespace) -> int:
    query = kernel_pb2.KernelQuery(
        blueprint_id=args.blueprint or "",
        status=KERNEL_STATUSES[args.status] if args.status else kernel_pb2.KERNEL_STATUS_UNSPECIFIED,
        pipeline=PIPELINES[args.pipeline] if args.pipeline else kernel_pb2.COMPILATION_PIPELINE_UNSPECIFIED,
        tags_all=args.tag or [],
        template_id=args.template or "",
    )
    kernels: list[kernel_pb2.KernelArtifact] = []
    token = ""
    with urza_client(args) as urza:
        while True:
            response = urza.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=1000, page_token=token))
            kernels.extend(response.result.kernels)
            token = response.result.next_page_token
            if not token:
                break
    views = [kernel_to_dict(kernel) for kernel in kernels]
    if args.json:
        print_json(views)
        return 0
    for view in views:
        tags = ",".join(view["tags"]) or "-"
        print(f"{view['id']}  {view['status']:<10} {view['pipeline']:<10} tags={tags}")
    print(f"{len(views)} kernel(s)", file=sys.stderr)
    return 0


def _download(args: argparse.Namespace) -> int:
    from esper.urza.fetch import download_kernel_bytes

    target = Path(args.output)
    if target.is_dir():
        raise InvalidArgument.for_field("-o", f"{target} is a directory; give a file path")
    with urza_client(args) as urza:
        data, kernel = download_kernel_bytes(urza, args.kernel_id)  # raises DataLoss on a bad checksum
    # Write beside the target and rename, so a failed download never leaves a partial file.
    atomic_write(target, data, suffix="", mode=0o600)
    # The metadata with its signature, for `esper kernel verify` wherever the file goes next.
    atomic_write(metadata_path(target), json_format.MessageToJson(kernel).encode("utf-8"), suffix="", mode=0o600)
    view = {"id": kernel.kernel_id, "path": str(target), "size_bytes": len(data), "sha256": kernel.sha256}
    if args.json:
        print_json(view)
    else:
        print(f"{target}: {len(data)} bytes, sha256 {kernel.sha256} (verified)")
    return 0


def metadata_path(artifact: Path) -> Path:
    """Where `esper kernel download` puts a kernel's metadata and signature beside its artifact."""
    return artifact.with_name(artifact.name + ".kernel.json")


def _verify(args: argparse.Namespace) -> int:
    """The checks Kasmina runs before it loads a kernel, offline: checksum, signature, format."""
    from esper.trust.artifact_format import MAX_UNCOMPRESSED_BYTES, check_artifact_format
    from esper.trust.kernel_signing import KernelSignatureError

    artifact = Path(args.file)
    trust = _verify_trust(args)
    try:
        size = artifact.stat().st_size
        if size > MAX_UNCOMPRESSED_BYTES:
            raise InvalidArgument.for_field("FILE", f"{artifact} holds {size} bytes; no kernel is that large")
        data = artifact.read_bytes()
    except OSError as exc:
        raise InvalidArgument.for_field("FILE", f"cannot read {artifact}: {exc.strerror}") from None
    kernel = _verify_metadata(Path(args.kernel) if args.kernel else metadata_path(artifact), artifact)
    sha256 = hashlib.sha256(data).hexdigest()
    if kernel.sha256 and kernel.sha256 != sha256:
        raise DataLoss(f"{artifact} has sha256 {sha256}; its metadata names {kernel.sha256}")
    try:
        signer = trust.verify(kernel, sha256)
    except KernelSignatureError as exc:
        raise KernelSignatureError(f"{artifact}: {exc.message}") from None
    check_artifact_format(data, kernel.pipeline)
    view = {"file": str(artifact), "kernel_id": kernel.kernel_id, "sha256": sha256, "signed_by": signer, "ok": True}
    if args.json:
        print_json(view)
    else:
        print(f"{artifact}: kernel {kernel.kernel_id} is signed by trusted key {signer} and passes the format check")
    return 0


def _verify_trust(args: argparse.Namespace) -> Any:
    from esper.mesh.addresses import load_mesh
    from esper.trust.kernel_signing import TrustedSigners

    files = [Path(path) for path in args.trust or ()]
    if args.mesh:
        pki = load_mesh(args.mesh).pki
        if pki is None or pki.kernel_signers is None:
            raise InvalidArgument.for_field("--mesh", f"{args.mesh} names no trusted kernel signers (pki)")
        files.append(pki.kernel_signers)
    if not files:
        raise UsageError("say whose signatures to trust: --mesh mesh.json or --trust KEYFILE")
    try:
        return TrustedSigners.from_files(files)
    except ValueError as exc:
        raise InvalidArgument.for_field("--trust", str(exc)) from None


def _verify_metadata(path: Path, artifact: Path) -> kernel_pb2.KernelArtifact:
    from esper.trust.kernel_signing import KernelSignatureError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KernelSignatureError(
            f"{artifact}: unsigned: no kernel metadata with a signature at {path} (`esper kernel download` writes it)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument.for_field("--kernel", f"cannot read {path}: {exc}") from None
    try:
        return json_format.Parse(text, kernel_pb2.KernelArtifact())
    except json_format.ParseError as exc:
        raise InvalidArgument.for_field("--kernel", f"{path} is not a KernelArtifact in JSON: {exc}") from None


def _command(
    group: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--urza", metavar="HOST:PORT", help="address of a running Urza (plaintext)")
    parser.add_argument(
        "--mesh", metavar="FILE", help="the mesh.json of `esper up`: its Urza, as the mesh's operator identity"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline per call in seconds")
    add_json_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def register(subparsers: Any) -> None:
    blueprint = subparsers.add_parser("blueprint", help="submit and inspect blueprints in Urza")
    blueprint_commands = blueprint.add_subparsers(dest="blueprint_command", metavar="ACTION", required=True)
    submit = _command(blueprint_commands, "submit", _submit, "submit a Karn catalog template as a blueprint")
    submit.add_argument("--template", required=True, metavar="TEMPLATE_ID")
    submit.add_argument(
        "--pipeline",
        action="append",
        choices=sorted(PIPELINES),
        help="pipeline to compile (repeatable; default: Urza's default pipelines)",
    )
    submit.add_argument(
        "--input-shape", metavar="DIMS", help="instantiate the template at this activation shape, e.g. 64 or 16,8,8"
    )
    submit.add_argument(
        "--output-shape",
        metavar="DIMS",
        help="for a width template (widen_*): the next layer's output shape the new units add into, e.g. 10",
    )
    get = _command(blueprint_commands, "get", _get, "show a blueprint's status, compile jobs and kernels")
    get.add_argument("blueprint_id", metavar="BLUEPRINT_ID")

    kernel = subparsers.add_parser("kernel", help="list and download compiled kernels from Urza")
    kernel_commands = kernel.add_subparsers(dest="kernel_command", metavar="ACTION", required=True)
    listing = _command(kernel_commands, "list", _list_kernels, "list kernels, optionally filtered")
    listing.add_argument("--blueprint", metavar="ID")
    listing.add_argument("--template", metavar="TEMPLATE_ID")
    listing.add_argument("--status", choices=sorted(KERNEL_STATUSES))
    listing.add_argument("--pipeline", choices=sorted(PIPELINES))
    listing.add_argument("--tag", action="append", help="required tag (repeatable: all must match)")
    download = _command(
        kernel_commands,
        "download",
        _download,
        "download a kernel and verify its SHA-256; its metadata and signature go to FILE.kernel.json",
    )
    download.add_argument("kernel_id", metavar="KERNEL_ID")
    download.add_argument("-o", "--output", required=True, metavar="FILE")
    verify_help = (
        "check a kernel artifact offline as Kasmina does before loading one: its SHA-256, its compile "
        "worker's signature against trusted keys, and its format (exit 1 with the reason if any fails)"
    )
    verify = kernel_commands.add_parser("verify", help=verify_help, description=verify_help)
    verify.add_argument("file", metavar="FILE", help="the .pt2 artifact")
    verify.add_argument(
        "--kernel", metavar="JSON", help="its metadata and signature (default: FILE.kernel.json, as downloaded)"
    )
    verify.add_argument("--mesh", metavar="FILE", help="trust the kernel signers of this mesh.json")
    verify.add_argument("--trust", action="append", metavar="KEYFILE", help="PEM public keys to trust (repeatable)")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify)

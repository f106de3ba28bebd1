"""`esper traces`: the traces Nissa stored for a run, a seed or a command.

Asks the Nissa of a mesh (`--mesh FILE`, its "nissa" address) and prints each trace
as a tree of spans, children under their parents with the service that emitted
each; `--json` prints the traces with every span's ids, names, times and attributes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from esper.cli.common import add_json_flag, print_json
from esper.errors import FailedPrecondition, InvalidArgument, UsageError
from esper.leyline.v1 import nissa_pb2

DEFAULT_TIMEOUT_SECONDS = 10.0
# Request field -> the flag that sets it, so a refused field is reported as the flag.
FLAGS = {
    "run_id": "--run",
    "seed_id": "--seed",
    "command_id": "--command",
    "limit": "--limit",
    "mesh": "--mesh",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "traces",
        help="traces Nissa stored for a run, seed or command",
        description="Print the traces Nissa stored whose spans carry the given run, seed or command id, newest first.",
    )
    parser.add_argument("--mesh", type=Path, required=True, metavar="FILE", help="mesh.json naming Nissa's address")
    wanted = parser.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--run", metavar="RUN_ID", help="traces of this run (span attribute esper.run_id)")
    wanted.add_argument("--seed", metavar="SEED_ID", help="traces of this seed (esper.seed_id)")
    # Not dest "command": that names the esper sub-command in error messages.
    wanted.add_argument(
        "--command", dest="command_id", metavar="COMMAND_ID", help="traces of this command (esper.command_id)"
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="at most N traces, in [1, 1000] (default: 100)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"deadline of the call to Nissa (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_traces)


def _traces(args: argparse.Namespace) -> int:
    from esper.clients import NissaClient
    from esper.clients.base import ClientConfig
    from esper.mesh.addresses import load_mesh
    from esper.nissa.requests import check_find_traces

    request = nissa_pb2.FindTracesRequest(
        run_id=args.run or "", seed_id=args.seed or "", command_id=args.command_id or "", limit=args.limit
    )
    if not (request.run_id or request.seed_id or request.command_id):
        raise UsageError("--run/--seed/--command: the id must not be empty")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: must be > 0 seconds, got {args.timeout}")
    try:
        check_find_traces(request)
        mesh = load_mesh(args.mesh)
        address, tls = mesh.address("nissa"), mesh.operator_tls()
    except InvalidArgument as error:
        raise _usage_error(error) from None
    except FailedPrecondition as error:
        raise UsageError(f"--mesh: {args.mesh}: {error.message}") from None
    with NissaClient(ClientConfig(address=address, deadline_seconds=args.timeout, tls=tls)) as nissa:
        try:
            response = nissa.find_traces(request)
        except InvalidArgument as error:
            raise _usage_error(error) from None
    if args.json:
        print_json({"traces": [trace_to_dict(trace) for trace in response.traces]})
    else:
        for line in trace_lines(response.traces):
            print(line)
    return 0


def _usage_error(error: InvalidArgument) -> UsageError:
    """The refused request field, named as the flag that set it."""
    for violation in error.violations:
        flag = FLAGS.get(violation.field)
        if flag is not None:
            return UsageError(f"{flag}: {violation.description}")
    return UsageError(error.message)


def trace_to_dict(trace: nissa_pb2.TraceSummary) -> dict[str, Any]:
    return {"trace_id": trace.trace_id, "spans": [span_to_dict(span) for span in trace.spans]}


def span_to_dict(span: nissa_pb2.SpanSummary) -> dict[str, Any]:
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "service_name": span.service_name,
        "start_time": span.start_time.ToJsonString(),
        "end_time": span.end_time.ToJsonString(),
        "attributes": dict(span.attributes),
    }


def trace_lines(traces: Sequence[nissa_pb2.TraceSummary]) -> Iterator[str]:
    """Each trace as a header line and its spans as an indented tree (a span whose parent
    is not in the trace starts a tree of its own)."""
    if not traces:
        yield "no traces"
        return
    for trace in traces:
        yield f"trace {trace.trace_id}  ({len(trace.spans)} spans)"
        known = {span.span_id for span in trace.spans}
        children: dict[str, list[nissa_pb2.SpanSummary]] = {}
        for span in trace.spans:
            parent = span.parent_span_id if span.parent_span_id in known else ""
            children.setdefault(parent, []).append(span)
        shown: set[str] = set()
        yield from _tree(children, "", 1, shown)
        # Spans whose parent links form a loop hang under no root: still show them.
        for span in trace.spans:
            if span.span_id not in shown:
                shown.add(span.span_id)
                yield _span_line(span, 1)


def _tree(children: dict[str, list[nissa_pb2.SpanSummary]], parent: str, depth: int, shown: set[str]) -> Iterator[str]:
    for span in children.get(parent, []):
        if span.span_id in shown:
            continue
        shown.add(span.span_id)
        yield _span_line(span, depth)
        yield from _tree(children, span.span_id, depth + 1, shown)


def _span_line(span: nissa_pb2.SpanSummary, depth: int) -> str:
    millis = (span.end_time.ToNanoseconds() - span.start_time.ToNanoseconds()) / 1e6
    return f"{'  ' * depth}{span.name}  [{span.service_name or '?'}]  {millis:.3f} ms  span {span.span_id}"

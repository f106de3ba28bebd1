"""Leyline serialization: encoded size and encode+decode time of the hot messages.

Budgets (docs/benchmarks.md): SystemStatePacket with 16 seeds < 280 B and < 80 us to encode +
decode; our target is < 20 us. Prints a markdown table; never part of the tests.

    .venv/bin/python bench/leyline_bench.py [--iterations N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from google.protobuf import __version__ as protobuf_version
from google.protobuf.internal import api_implementation
from google.protobuf.message import Message

from esper.state.samples import (
    sample_adaptation_command,
    sample_envelope,
    sample_field_report,
    sample_state_packet,
)


def round_trip_us(message: Message, iterations: int, repeats: int = 7) -> tuple[float, float]:
    """Median and best of `repeats` timings, each the mean over `iterations` encode+decode."""
    cls = type(message)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            cls.FromString(message.SerializeToString())
        timings.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(timings), min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()

    cases: list[tuple[str, Callable[[], Message], str]] = [
        ("SystemStatePacket (16 seeds)", sample_state_packet, "< 280 B, < 80 us (target < 20 us)"),
        ("AdaptationCommand", sample_adaptation_command, "-"),
        ("FieldReport", sample_field_report, "-"),
        ("BusEnvelope (wrapping the packet)", sample_envelope, "-"),
    ]
    print(f"protobuf {protobuf_version} ({api_implementation.Type()} backend), {args.iterations} iterations")
    print()
    print("| message | encoded bytes | encode+decode median (us) | best (us) | budget |")
    print("|---|---:|---:|---:|---|")
    for name, make, budget in cases:
        message = make()
        median, best = round_trip_us(message, args.iterations)
        print(f"| {name} | {message.ByteSize()} | {median:.2f} | {best:.2f} | {budget} |")


if __name__ == "__main__":
    main()

"""SpanStore: traces found by any span's esper id, newest first, and whole oldest traces evicted past the bound."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from esper.nissa.config import SpanStoreConfig, database_url
from esper.nissa.spans import COMMAND_ID, RUN_ID, SEED_ID, SpanStore, StoredTrace
from esper.observability import metrics
from tests.support.otlp import span_id, stored, trace_id


def _open(max_spans: int = 1000) -> SpanStore:
    return SpanStore.open(SpanStoreConfig(url=database_url(":memory:"), max_spans=max_spans))


@pytest.fixture
def store() -> Iterator[SpanStore]:
    opened = _open()
    yield opened
    opened.close()


def _trace_ids(found: list[StoredTrace]) -> list[str]:
    return [trace.trace_id for trace in found]


def test_a_trace_matches_when_any_span_carries_the_run_and_comes_with_all_its_spans(store: SpanStore) -> None:
    store.add(
        [
            stored(1, 2, parent=1, start=50, service="kasmina"),
            stored(1, 1, start=0, service="tamiyo", attributes={RUN_ID: "run-a"}),
            stored(1, 3, parent=2, start=70, service="urza", attributes={"rpc.method": "GetKernel"}),
            stored(2, 9, start=0, attributes={RUN_ID: "run-b"}),
        ]
    )
    [trace] = store.find_traces(run_id="run-a")
    assert trace.trace_id == trace_id(1).hex()
    assert [(s.span_id, s.parent_span_id, s.service_name) for s in trace.spans] == [
        (span_id(1).hex(), "", "tamiyo"),
        (span_id(2).hex(), span_id(1).hex(), "kasmina"),
        (span_id(3).hex(), span_id(2).hex(), "urza"),
    ]
    assert trace.spans[2].attributes == {"rpc.method": "GetKernel"}
    assert trace.spans[0].attributes == {RUN_ID: "run-a"}


@pytest.mark.parametrize(("key", "query"), [(SEED_ID, "seed_id"), (COMMAND_ID, "command_id"), (RUN_ID, "run_id")])
def test_each_esper_id_finds_its_traces_and_only_those(store: SpanStore, key: str, query: str) -> None:
    store.add(
        [
            stored(1, 1, attributes={key: "wanted"}),
            stored(2, 2, attributes={key: "other"}),
            stored(3, 3, start=5, attributes={key: "wanted"}),
            stored(4, 4, attributes={"esper.epoch": "wanted"}),
        ]
    )
    wanted: dict[str, Any] = {query: "wanted"}
    missing: dict[str, Any] = {query: "missing"}
    assert _trace_ids(store.find_traces(**wanted)) == [trace_id(3).hex(), trace_id(1).hex()]
    assert store.find_traces(**missing) == []


def test_several_ids_select_traces_that_carry_each_of_them(store: SpanStore) -> None:
    store.add(
        [
            stored(1, 1, attributes={RUN_ID: "run"}),
            stored(1, 2, attributes={SEED_ID: "seed-7"}),
            stored(2, 3, attributes={RUN_ID: "run"}),
            stored(3, 4, attributes={SEED_ID: "seed-7"}),
        ]
    )
    assert _trace_ids(store.find_traces(run_id="run", seed_id="seed-7")) == [trace_id(1).hex()]


def test_traces_come_newest_first_by_their_earliest_span_and_limit_keeps_the_newest(store: SpanStore) -> None:
    store.add([stored(n, 1, start=100 * n, attributes={RUN_ID: "run"}) for n in (1, 3, 2)])
    # A late span that starts before everything makes trace 3 the oldest.
    store.add([stored(3, 2, start=-500, attributes={RUN_ID: "run"})])
    found = store.find_traces(run_id="run")
    assert _trace_ids(found) == [trace_id(2).hex(), trace_id(1).hex(), trace_id(3).hex()]
    assert [s.span_id for s in found[2].spans] == [span_id(2).hex(), span_id(1).hex()]
    assert _trace_ids(store.find_traces(run_id="run", limit=2)) == [trace_id(2).hex(), trace_id(1).hex()]


def test_a_span_sent_twice_is_stored_once(store: SpanStore) -> None:
    first = store.add([stored(1, 1, attributes={RUN_ID: "r"}), stored(1, 1, attributes={RUN_ID: "r"})])
    again = store.add([stored(1, 1, attributes={RUN_ID: "r"}), stored(1, 2)])
    assert (first.stored, first.duplicates, again.stored, again.duplicates) == (1, 1, 1, 1)
    assert store.count() == 2
    [trace] = store.find_traces(run_id="r")
    assert len(trace.spans) == 2


def test_past_the_bound_whole_oldest_traces_go_and_are_counted() -> None:
    store = _open(max_spans=5)
    evicted_before = metrics.REGISTRY.get_sample_value("esper_nissa_spans_evicted_total") or 0.0
    store.add([stored(2, n, start=200 + n, attributes={RUN_ID: "r"}) for n in (1, 2)])
    # Arrives later but started first: the oldest trace.
    store.add([stored(1, n, start=n, attributes={RUN_ID: "r"}) for n in (1, 2, 3)])
    assert store.evicted_spans == 0
    result = store.add([stored(3, n, start=300 + n, attributes={RUN_ID: "r"}) for n in (1, 2)])
    assert (result.evicted_traces, result.evicted_spans, result.total) == (1, 3, 4)
    assert (store.evicted_traces, store.evicted_spans, store.count()) == (1, 3, 4)
    found = store.find_traces(run_id="r")
    assert _trace_ids(found) == [trace_id(3).hex(), trace_id(2).hex()]
    assert all(len(trace.spans) == 2 for trace in found)
    assert metrics.REGISTRY.get_sample_value("esper_nissa_spans_evicted_total") == evicted_before + 3
    assert metrics.REGISTRY.get_sample_value("esper_nissa_spans_stored") == 4
    store.close()


def test_a_trace_larger_than_the_bound_is_not_kept() -> None:
    store = _open(max_spans=3)
    result = store.add([stored(1, n, start=n, attributes={RUN_ID: "r"}) for n in range(1, 5)])
    assert (result.stored, result.evicted_spans, store.count()) == (4, 4, 0)
    assert store.find_traces(run_id="r") == []
    store.close()


def test_concurrent_adds_keep_every_span_and_the_bound() -> None:
    store = _open(max_spans=150)

    def add(worker: int) -> None:
        for n in range(20):
            store.add(
                [
                    stored(1000 * worker + n, 1, start=n, attributes={RUN_ID: "r"}),
                    stored(1000 * worker + n, 2, parent=1, start=n + 1),
                ]
            )

    threads = [threading.Thread(target=add, args=(worker,)) for worker in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 150
    assert store.evicted_spans == 200 - 150
    found = store.find_traces(run_id="r", limit=1000)
    assert len(found) == 75
    assert all(len(trace.spans) == 2 for trace in found)
    store.close()


def test_a_sqlite_file_keeps_spans_across_reopening(tmp_path: Path) -> None:
    config = SpanStoreConfig(url=database_url(str(tmp_path / "spans.db")), max_spans=10)
    store = SpanStore.open(config)
    store.add([stored(1, 1, attributes={COMMAND_ID: "cmd-1"})])
    store.close()
    reopened = SpanStore.open(config)
    assert _trace_ids(reopened.find_traces(command_id="cmd-1")) == [trace_id(1).hex()]
    reopened.close()


def test_find_traces_needs_an_id(store: SpanStore) -> None:
    with pytest.raises(ValueError, match="at least one"):
        store.find_traces()


@pytest.mark.parametrize(
    ("db", "url"),
    [
        (":memory:", "sqlite://"),
        ("postgresql+psycopg://u@h:5432/nissa", "postgresql+psycopg://u@h:5432/nissa"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_db_flag_values_become_urls(db: str, url: str) -> None:
    assert database_url(db) == url


def test_a_path_becomes_an_absolute_sqlite_url(tmp_path: Path) -> None:
    assert database_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"

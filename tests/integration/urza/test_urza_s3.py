"""The object store and the hub on real S3 (SeaweedFS), and the deployed pairing PostgreSQL + S3."""

from __future__ import annotations

import itertools
from pathlib import Path

import boto3
import pytest

from esper.errors import DataLoss, Unavailable
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub
from esper.urza.store import S3ObjectStore, open_object_store
from tests.support.seaweedfs import S3Server
from tests.support.store_contract import check_object_store_contract
from tests.support.urza import claim, complete, make_hub, program_archive, run_core_flow, submit

pytestmark = pytest.mark.integration

_buckets = itertools.count()


def _config(s3: S3Server, store: str, **fields: object) -> UrzaConfig:
    settings: dict[str, object] = {
        "store": store,
        "s3_endpoint_url": s3.endpoint_url,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "s3_region": s3.region,
        **fields,
    }
    return UrzaConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def bucket() -> str:
    return f"esper-test-{next(_buckets)}"


def _s3_client(s3: S3Server):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
    )


def test_s3_store_meets_the_contract_and_creates_its_bucket(s3_server: S3Server, bucket: str) -> None:
    store = open_object_store(_config(s3_server, f"s3://{bucket}/artifacts"))
    assert isinstance(store, S3ObjectStore)
    check_object_store_contract(store)
    store.put("kernels/k.pt2", b"bytes")
    listed = _s3_client(s3_server).list_objects_v2(Bucket=bucket)
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    assert keys == ["artifacts/kernels/big.pt2", "artifacts/kernels/k.pt2"]


def test_wrong_credentials_are_unavailable(s3_server: S3Server, bucket: str) -> None:
    with pytest.raises(Unavailable):
        open_object_store(_config(s3_server, f"s3://{bucket}", s3_secret_key="wrong"))


def test_kernel_bytes_round_trip_through_s3_and_corruption_is_detected(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    store = open_object_store(_config(s3_server, f"s3://{bucket}"))
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", store)
    submit(hub, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    job = claim(hub)
    assert job is not None
    artifact = program_archive(bytes(range(256)) * 4096)  # 1 MiB and a little
    kernel = complete(hub, job, bytes(range(256)) * 4096)
    chunks = hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id, chunk_size=65536))
    assert b"".join(chunk.chunk_data for chunk in chunks) == artifact
    client = _s3_client(s3_server)
    (key,) = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    client.put_object(Bucket=bucket, Key=key, Body=b"tampered" + artifact[8:])
    with pytest.raises(DataLoss) as caught:
        list(hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id)))
    assert caught.value.reason == "CHECKSUM_MISMATCH"
    hub.close()


def test_deployed_pairing_postgres_and_s3(s3_server: S3Server, bucket: str, postgres_url: str) -> None:
    hub = UrzaHub.open(_config(s3_server, f"s3://{bucket}/urza", database_url=postgres_url))
    assert hub.database.is_postgres
    assert isinstance(hub.store, S3ObjectStore)
    run_core_flow(hub)
    hub.close()

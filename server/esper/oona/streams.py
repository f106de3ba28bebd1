"""JetStream set-up: the streams of `OonaConfig` and their durable pull consumers, idempotently."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from esper.errors import FailedPrecondition
from esper.oona.config import OonaConfig, StreamSpec

logger = logging.getLogger(__name__)

# JetStream error code: "stream name already in use with a different configuration".
_STREAM_NAME_IN_USE = 10058


def stream_config(spec: StreamSpec, config: OonaConfig) -> api.StreamConfig:
    retention = api.RetentionPolicy.WORK_QUEUE if spec.work_queue else api.RetentionPolicy.LIMITS
    return _stream(spec.name, list(spec.subjects), retention, spec.max_age_seconds, config)


def dead_letter_stream_config(config: OonaConfig) -> api.StreamConfig:
    return _stream(
        config.dead_letter_stream,
        [config.dead_letter_subjects],
        api.RetentionPolicy.LIMITS,
        config.dead_letter_max_age_seconds,
        config,
    )


def _stream(
    name: str, subjects: list[str], retention: api.RetentionPolicy, max_age: float, config: OonaConfig
) -> api.StreamConfig:
    return api.StreamConfig(
        name=name,
        subjects=subjects,
        retention=retention,
        storage=api.StorageType.FILE if config.file_storage else api.StorageType.MEMORY,
        max_age=max_age,
        duplicate_window=min(config.duplicate_window_seconds, max_age),
        discard=api.DiscardPolicy.OLD,
    )


async def ensure_streams(js: JetStreamContext, config: OonaConfig) -> None:
    """Create every stream, or bring an existing one to this configuration."""
    wanted = [stream_config(spec, config) for spec in config.streams]
    wanted.append(dead_letter_stream_config(config))
    for stream in wanted:
        try:
            await js.add_stream(stream)
        except BadRequestError as error:
            if error.err_code != _STREAM_NAME_IN_USE:
                raise
            try:
                await js.update_stream(stream)
            except BadRequestError as update_error:
                raise FailedPrecondition(
                    f"stream {stream.name} exists with a configuration that cannot become this one: "
                    f"{update_error.description}"
                ) from update_error
            logger.info("oona: updated stream %s", stream.name)


def consumer_config(durable: str, filter_subject: str, config: OonaConfig) -> api.ConsumerConfig:
    """A durable pull consumer with explicit acks, redelivery after ack_wait, at most max_deliver tries."""
    return api.ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=config.ack_wait_seconds,
        max_deliver=config.max_deliver,
        max_ack_pending=max(config.fetch_batch * 4, 1_000),
    )


async def ensure_consumer(js: JetStreamContext, stream: str, consumer: api.ConsumerConfig) -> None:
    """Create the durable consumer, or update it to this configuration (both idempotent on the server)."""
    await js.add_consumer(stream, consumer)

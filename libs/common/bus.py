"""NATS JetStream wiring: streams, durable queue consumers and deduplicated publishing.

Every consumer acks only after its handler returned (so after its database commit),
nacks on error so the message comes back, and gives up after `max_deliver` tries;
the max-deliveries advisories are captured in a stream of their own so the monitor
turns them into alerts instead of letting a message vanish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from courier.common.events import Event
from courier.common.logging import get_logger
from courier.common.settings import Settings, without_password

E = TypeVar("E", bound=Event)

DUPLICATE_WINDOW_SECONDS = 120.0
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_days: int = 30


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("COURIER_FILES", ("courier.file.>",)),
    StreamSpec("COURIER_IMPORTS", ("courier.import.>",)),
    # What people ask the monitor to do with an incident (acknowledge, resolve, note).
    StreamSpec("COURIER_INCIDENTS", ("courier.incident.>",)),
    StreamSpec("COURIER_EXPORTS", ("courier.export.>",)),
    # Alerts, and the notices the monitor raises from them for the notifier.
    StreamSpec("COURIER_ALERTS", ("courier.alert.>", "courier.notice.>")),
)
ADVISORY_STREAM = "COURIER_ADVISORIES"


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: `*` is one token, a final `>` one or more."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(got) == len(want)


def stream_for(subject: str) -> str:
    for spec in STREAMS:
        if any(subject_matches(pattern, subject) for pattern in spec.subjects):
            return spec.name
    raise ValueError(f"no stream holds subject {subject}")


# How long a starting service waits for JetStream to answer (a cluster electing leaders).
STREAMS_READY_SECONDS = 120.0
_NOT_READY_YET = (NatsTimeoutError, NoRespondersError, ServiceUnavailableError, TimeoutError)
log = get_logger(__name__)


def _waiting_for_streams(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "jetstream not ready; declaring streams again",
        attempt=state.attempt_number,
        error=repr(error),
    )


class Bus:
    def __init__(self, settings: Settings, client_name: str = "courier") -> None:
        self.settings = settings
        self.namespace = settings.nats_namespace
        self.replicas = settings.nats_replicas
        self.broker = NatsBroker(
            # One URL, or the cluster's nodes comma-separated (any one answering will do).
            [url.strip() for url in settings.nats_url.split(",") if url.strip()],
            name=client_name,
            logger=None,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        self._started = False

    # -------------------------------------------------------------- naming

    def subject(self, subject: str) -> str:
        return f"{self.namespace}.{subject}" if self.namespace else subject

    def stream(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    def durable(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    # -------------------------------------------------------------- lifecycle

    async def ensure_streams(self) -> None:
        """Declare (or update) every stream; idempotent so each service may call it."""
        js = self.broker.connection.jetstream()
        configs = [
            StreamConfig(
                name=self.stream(spec.name),
                subjects=[self.subject(s) for s in spec.subjects],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=spec.max_age_days * 86400.0,
                num_replicas=self.replicas,
            )
            for spec in STREAMS
        ]
        configs.append(
            StreamConfig(
                name=self.stream(ADVISORY_STREAM),
                subjects=[
                    f"{MAX_DELIVERIES_ADVISORY}.{self.stream(spec.name)}.>" for spec in STREAMS
                ],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=30 * 86400.0,
                num_replicas=self.replicas,
            )
        )
        for config in configs:
            try:
                await js.stream_info(config.name)
                await js.update_stream(config)
            except NotFoundError:
                await js.add_stream(config)

    async def connect(self) -> None:
        await self.broker.connect()
        # A cluster that has just (re)started answers JetStream requests only once its
        # nodes have elected leaders: a pod started then waits instead of crash-looping.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_NOT_READY_YET),
            wait=wait_exponential(multiplier=0.25, max=5),
            stop=stop_after_delay(STREAMS_READY_SECONDS),
            before_sleep=_waiting_for_streams,
            reraise=True,
        ):
            with attempt:
                await self.ensure_streams()

    async def start(self) -> None:
        """Connect, declare streams, then start the subscribers registered so far."""
        await self.connect()
        await self.broker.start()
        self._started = True

    async def stop(self) -> None:
        await self.broker.stop()
        self._started = False

    async def ping(self) -> bool:
        try:
            return bool(await self.broker.ping(timeout=2))
        except Exception:
            return False

    # -------------------------------------------------------------- publish

    async def publish(self, event: Event) -> Any:
        """Publish with a content-derived `Nats-Msg-Id` and wait for the stream's ack.

        Refuses at once while the connection is down: the relay holds the outbox rows
        (on SQLite, the database's write lock) while it publishes, and must not hold
        them for a publish timeout per row through an outage.
        """
        if not self.broker.connection.is_connected:
            where = without_password(self.settings.nats_url)
            raise ConnectionError(f"not connected to NATS at {where}")
        subject = self.subject(event.subject)
        return await self.broker.publish(
            event.model_dump(mode="json"),
            subject,
            headers={"Nats-Msg-Id": event.msg_id(), "Courier-Event-Version": str(event.version)},
            stream=self.stream(stream_for(event.subject)),
            timeout=10,
        )

    # -------------------------------------------------------------- consume

    def consume(
        self,
        event_type: type[E],
        durable: str,
        handler: Callable[[E], Awaitable[None]],
        *,
        filter_subject: str | None = None,
        max_deliver: int | None = None,
        ack_wait: float | None = None,
    ) -> None:
        """Register a durable pull consumer shared by every replica of a service.

        One message per fetch (FastStream issue 2563: larger batches than workers get
        redelivered while they wait).
        """
        subject = self.subject(filter_subject or event_type.subject)
        config = ConsumerConfig(
            max_deliver=max_deliver or self.settings.max_deliver,
            ack_wait=ack_wait or self.settings.ack_wait_seconds,
            deliver_policy=DeliverPolicy.ALL,
        )

        async def _on_message(body: dict[str, Any]) -> None:
            await handler(event_type.model_validate(body))

        _on_message.__name__ = f"{durable}_{event_type.__name__}"
        self.broker.subscriber(
            subject,
            stream=JStream(self.stream(stream_for(event_type.subject)), declare=False),
            durable=self.durable(durable),
            config=config,
            pull_sub=PullSub(batch_size=1, timeout=2.0),
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )(_on_message)

    def consume_advisories(
        self, durable: str, handler: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        """Max-deliveries advisories, durably (the monitor raises alerts from them)."""
        config = ConsumerConfig(max_deliver=self.settings.max_deliver)

        async def _on_advisory(body: dict[str, Any]) -> None:
            await handler(body)

        self.broker.subscriber(
            f"{MAX_DELIVERIES_ADVISORY}.>",
            stream=JStream(self.stream(ADVISORY_STREAM), declare=False),
            durable=self.durable(durable),
            config=config,
            pull_sub=PullSub(batch_size=1, timeout=2.0),
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )(_on_advisory)

    # -------------------------------------------------------------- read back

    async def fetch_message(self, stream: str, seq: int) -> dict[str, Any] | None:
        """Read back a stored message (for an advisory naming a stream sequence)."""
        js = self.broker.connection.jetstream()
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            return None
        return {"subject": msg.subject, "data": msg.data, "headers": msg.headers}

"""The exporter's work: schedule due periods, then build and deliver each export once.

Exactly once per spec and period comes from the database: the unique (spec, period)
row is created by whichever replica gets there first, and a lease on that row says
who builds and delivers it. A lease that runs out (its holder died) is taken over,
so a restart between scheduling and building still ends with one file.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
)

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_exports import DeliveryAttempt, Export, ExportSpec
from courier.common.events import AlertRaised, Event, ExportDelivered
from courier.common.identity import instance_name
from courier.common.lease import free, hold
from courier.common.logging import get_logger
from courier.common.metrics import (
    EXPORT_BUILD_SECONDS,
    EXPORT_DELIVERY_ATTEMPTS,
    EXPORT_ROWS,
    EXPORT_SAMPLES,
    EXPORTS,
)
from courier.common.outbox import stage
from courier.common.remote import HostKeyRefused, RemoteError
from courier.common.storage import Storage, StorageError
from courier.exporter.build import BuildError, build_file
from courier.exporter.deliver import DeliveryError, to_pickup, to_sftp
from courier.exporter.encrypt import build_encrypted
from courier.exporter.samples import claim_sample, destinations, sample_name
from courier.exporter.schedule import Run, claim_period, period_containing, schedule_due
from courier.exporter.spec import (
    ExportSpecModel,
    PickupDestination,
    SftpDestination,
    render_file_name,
)

log = get_logger(__name__)

Clock = Callable[[], datetime]
ACTIVE = ("pending", "delivering")
RETRYABLE = (RemoteError, DeliveryError, StorageError, OSError, TimeoutError)


@dataclass
class Tuning:
    lease: timedelta = timedelta(seconds=60)
    retry_min_seconds: float = 2.0
    retry_max_seconds: float = 300.0


@dataclass
class Exporter:
    db: Database
    storage: Storage
    clock: Clock = utcnow
    tuning: Tuning = field(default_factory=Tuning)
    owner: str = field(default_factory=lambda: instance_name("exporter"))
    # Unlocks the tenants' Courier keys that sign encrypted exports.
    pgp_passphrase: SecretStr | None = None

    # ------------------------------------------------------------ scheduling

    async def schedule(self) -> list[Export]:
        return await schedule_due(self.db, self.clock())

    async def runnable(self) -> list[uuid.UUID]:
        """Exports nobody holds a live lease on."""
        async with self.db.session() as s:
            return list(
                await s.scalars(
                    select(Export.id)
                    .where(Export.status.in_(ACTIVE), free(Export, self.clock()))
                    .order_by(Export.scheduled_for)
                )
            )

    # ------------------------------------------------------------ one export

    async def process(self, export_id: uuid.UUID, *, single_attempt: bool = False) -> str | None:
        """Build (if not built) and deliver; the status reached, None if leased elsewhere
        (or the lease was lost on the way: the step is then another replica's)."""
        async with hold(
            self.db,
            Export,
            export_id,
            self.owner,
            self.tuning.lease,
            clock=self.clock,
            where=[Export.status.in_(ACTIVE)],
        ) as lease:
            if lease is None:
                return None
            export = await self.load(export_id)
            spec = ExportSpecModel.of(export.spec)
            if export.status == "pending":
                await self._build(export, spec)
                export = await self.load(export_id)
            if export.status == "delivering":
                if not lease.held:
                    return None
                await self._deliver(export, spec, single_attempt=single_attempt)
                export = await self.load(export_id)
            return export.status

    async def load(self, export_id: uuid.UUID) -> Export:
        async with self.db.session() as s:
            export = await s.get(Export, export_id, populate_existing=True)
            assert export is not None
            return export

    def _context(self, export: Export) -> dict[str, str]:
        return {
            "tenant_id": str(export.tenant_id),
            "spec": export.spec.name,
            "export_id": str(export.id),
            "period": f"{export.period_start}..{export.period_end}",
        }

    async def _build(self, export: Export, spec: ExportSpecModel) -> None:
        tenant = export.spec.tenant.slug
        run_local = export.scheduled_for.astimezone(spec.schedule.zone)
        name = render_file_name(
            spec.file_name, export.period_start, export.period_end, run_local, spec.name, tenant
        )
        if export.test:
            name = sample_name(name)
        if spec.encrypt is not None:
            name += spec.encrypt.suffix
        key = f"tenants/{tenant}/exports/{export.id}/{name}"
        started = time.monotonic()
        period = (export.tenant_id, export.period_start, export.period_end, key)
        try:
            if spec.encrypt is None:
                built = await build_file(self.db, self.storage, spec, *period)
            else:
                built = await build_encrypted(
                    self.db,
                    self.storage,
                    spec,
                    *period,
                    passphrase=self.pgp_passphrase,
                    now=self.clock(),
                )
        except Exception as exc:
            # A BuildError says what to fix in words; anything else is named by its type.
            reason = str(exc) if isinstance(exc, BuildError) else f"{type(exc).__name__}: {exc}"
            log.exception("export build failed", **self._context(export))
            async with self.db.transaction() as s:
                row = await s.get(Export, export.id)
                assert row is not None
                row.status, row.error, row.finished_at = "failed", reason, self.clock()
                if not export.test:  # a sample's failure is seen by whoever asked for it
                    stage(
                        s,
                        self._alert(
                            export,
                            "export_build_failed",
                            f"export {name} could not be built: {reason}",
                        ),
                    )
            self._count(export, spec, "failed")
            return
        EXPORT_BUILD_SECONDS.labels(spec.kind).observe(time.monotonic() - started)
        EXPORT_ROWS.labels(spec.kind).inc(built.rows)
        now = self.clock()
        async with self.db.transaction() as s:
            row = await s.get(Export, export.id)
            assert row is not None
            row.status = "delivering"
            row.file_name, row.storage_key = name, built.key
            row.rows, row.size, row.sha256 = built.rows, built.size, built.sha256
            row.built_at = row.delivery_started_at = now
            row.deliver_by = now + spec.delivery_window
        log.info("export built", rows=built.rows, size=built.size, **self._context(export))

    async def _deliver(
        self, export: Export, spec: ExportSpecModel, *, single_attempt: bool
    ) -> None:
        done = {
            a.destination
            for a in export.attempts
            if a.outcome == "delivered"
            and export.delivery_started_at is not None
            and a.attempted_at >= export.delivery_started_at
        }
        pending = [d for d in destinations(export, spec) if d.label not in done]
        results = await asyncio.gather(
            *(self._deliver_one(export, d, single_attempt, spec.delivery_window) for d in pending)
        )
        errors = [e for e in results if e is not None]
        now = self.clock()
        assert export.deliver_by is not None
        if not errors:
            status = "delivered"
        elif single_attempt and now < export.deliver_by:
            return  # the service keeps trying until the window closes
        else:
            status = "undeliverable"
        async with self.db.transaction() as s:
            row = await s.get(Export, export.id)
            assert row is not None
            row.status, row.finished_at = status, now
            row.error = "; ".join(errors) or None
            if errors and not export.test:
                stage(
                    s,
                    self._alert(
                        export,
                        "export_undeliverable",
                        f"export {export.file_name} was not delivered by "
                        f"{export.deliver_by:%Y-%m-%d %H:%M} UTC: {errors[-1]}",
                        last_error=errors[-1],
                    ),
                )
        self._count(export, spec, status)

    def _count(self, export: Export, spec: ExportSpecModel, status: str) -> None:
        (EXPORT_SAMPLES if export.test else EXPORTS).labels(spec.kind, status).inc()

    async def _deliver_one(
        self,
        export: Export,
        dest: PickupDestination | SftpDestination,
        single_attempt: bool,
        window: timedelta,
    ) -> str | None:
        """Try until delivered or the window closes; the last error, or None on success."""
        assert export.storage_key and export.file_name and export.deliver_by
        deliver_by = export.deliver_by
        tenant = export.spec.tenant.slug
        last_error: list[str] = []

        async def attempt() -> int:
            try:
                if isinstance(dest, PickupDestination):
                    size = await to_pickup(
                        self.storage, export.storage_key or "", tenant, dest, export.file_name or ""
                    )
                else:
                    size = await to_sftp(
                        self.storage, export.storage_key or "", dest, export.file_name or ""
                    )
            except Exception as exc:
                message = str(exc) or type(exc).__name__
                last_error[:] = [message]
                await self._audit(export, dest.label, "failed", error=message)
                log.warning(
                    "delivery attempt failed",
                    destination=dest.label,
                    error=message,
                    **self._context(export),
                )
                raise
            delivered = ExportDelivered(
                export_id=export.id,
                tenant_id=export.tenant_id,
                tenant=tenant,
                spec=export.spec.name,
                destination=dest.label,
                name=export.file_name,
                sha256=export.sha256 or "",
                rows=export.rows or 0,
                **self._collection(dest, export.file_name or "", window),
            )
            # A sample is not the period's export: nothing downstream may take it for one.
            announced = None if export.test else delivered
            await self._audit(export, dest.label, "delivered", size=size, event=announced)
            return size

        def window_closed(state: RetryCallState) -> bool:
            return single_attempt or self.clock() >= deliver_by

        def wait(state: RetryCallState) -> float:
            backoff = wait_exponential(
                multiplier=self.tuning.retry_min_seconds, max=self.tuning.retry_max_seconds
            )(state)
            left = (deliver_by - self.clock()).total_seconds()
            return max(0.0, min(backoff, left))

        try:
            async for trying in AsyncRetrying(
                stop=window_closed,
                wait=wait,
                # A refused host key will not fix itself: an operator has to look.
                retry=retry_if_exception_type(RETRYABLE)
                & retry_if_not_exception_type(HostKeyRefused),
                reraise=True,
            ):
                with trying:
                    await attempt()
        except Exception as exc:
            return last_error[0] if last_error else f"{type(exc).__name__}: {exc}"
        log.info("export delivered", destination=dest.label, **self._context(export))
        return None

    async def _audit(
        self,
        export: Export,
        destination: str,
        outcome: str,
        *,
        error: str | None = None,
        size: int | None = None,
        event: Event | None = None,
    ) -> None:
        EXPORT_DELIVERY_ATTEMPTS.labels(outcome).inc()
        async with self.db.transaction() as s:
            if event is not None:
                stage(s, event)
            s.add(
                DeliveryAttempt(
                    export_id=export.id,
                    destination=destination,
                    attempted_at=self.clock(),
                    outcome=outcome,
                    error=error,
                    size=size,
                )
            )

    def _collection(
        self, dest: PickupDestination | SftpDestination, name: str, window: timedelta
    ) -> dict[str, Any]:
        """For a pickup delivery the monitor watches for: its path and its deadline."""
        if not isinstance(dest, PickupDestination) or not dest.confirm_download:
            return {}
        collect_by = self.clock() + (dest.collect_within or window)
        return {"path": dest.path(name), "collect_by": collect_by}

    def _alert(self, export: Export, kind: str, summary: str, **details: Any) -> AlertRaised:
        # The partner told of it is the spec's contact (as for an export not collected);
        # without one the monitor falls back to the tenant's feed contacts.
        contacts = list((export.spec.spec or {}).get("contacts") or [])
        if contacts:
            details = {"contacts": contacts, **details}
        return AlertRaised(
            kind=kind,
            cause_key=f"export:{export.spec_id}:{export.period_start}",
            tenant_id=export.tenant_id,
            tenant=export.spec.tenant.slug,
            summary=summary,
            details={
                "export_id": str(export.id),
                "spec": export.spec.name,
                "period_start": str(export.period_start),
                "period_end": str(export.period_end),
                **details,
            },
        )

    # ------------------------------------------------------------ operator actions

    async def run_now(self, spec_row: ExportSpec, day: date | None) -> Export | None:
        """Create the export of the period containing `day` (default: the one due now)."""
        spec = ExportSpecModel.model_validate(spec_row.spec)
        now = self.clock()
        if day is None:
            local = now.astimezone(ExportSpecModel.of(spec_row).schedule.zone).date()
            day = local - timedelta(days=1)
        start, end = period_containing(spec.period, day)
        return await claim_period(self.db, spec_row, Run(now, start, end))

    async def run_sample(
        self, spec_row: ExportSpec, day: date, sample_id: uuid.UUID
    ) -> Export | None:
        """Create the sample of the period containing `day`, asked for as `sample_id`."""
        spec = ExportSpecModel.of(spec_row)
        start, end = period_containing(spec.period, day)
        return await claim_sample(self.db, spec_row, Run(self.clock(), start, end), sample_id)

    async def reopen_delivery(self, export_id: uuid.UUID) -> Export | None:
        """Start a new delivery round for a built export, with a fresh window."""
        async with self.db.transaction() as s:
            export = await s.get(Export, export_id)
            if export is None or export.storage_key is None:
                return export
            spec = ExportSpecModel.of(export.spec)
            now = self.clock()
            export.status = "delivering"
            export.delivery_started_at = now
            export.deliver_by = now + spec.delivery_window
            export.finished_at = None
            export.error = None
        return export


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

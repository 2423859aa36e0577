"""`courier tenants …`: customers, and the region where each one's files live."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy import select

from courier.cli import output, provision, tenant_calendar
from courier.cli.context import run_with_db
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.regions import RegionNotConfigured, Regions, encryption_of, public_url
from courier.common.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Tenants (customers) and their regions.")
app.command("calendar")(tenant_calendar.calendar)
console = output.Output()
err = output.Output(stderr=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys, ids in full).")]


class StoresView(BaseModel):
    """Where a region keeps the tenant's files, as printable URLs (no credentials)."""

    primary: str
    encryption: str
    backup: str | None
    backup_encryption: str | None


class TenantView(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    timezone: str
    region: str
    retention_days_primary: int | None
    retention_days_backup: int | None
    holiday_country: str | None
    holiday_subdivision: str | None
    closure_dates: list[str]
    # None: the tenant's region has no configured store here.
    stores: StoresView | None = None


def _view(tenant: Tenant, regions: Regions | None = None) -> TenantView:
    stores = None
    if regions is not None and regions.is_configured(tenant.region):
        found = regions.stores(tenant.region)
        stores = StoresView(
            primary=public_url(found.storage_url) or "",
            encryption=encryption_of(found.storage_url, found),
            backup=public_url(found.backup_url),
            backup_encryption=encryption_of(found.backup_url, found) if found.backup_url else None,
        )
    return TenantView(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        timezone=tenant.timezone,
        region=tenant.region,
        retention_days_primary=tenant.retention_days_primary,
        retention_days_backup=tenant.retention_days_backup,
        holiday_country=tenant.holiday_country,
        holiday_subdivision=tenant.holiday_subdivision,
        closure_dates=list(tenant.closure_dates or []),
        stores=stores,
    )


RegionOption = Annotated[
    str | None,
    typer.Option(help="Where the tenant's files live (a region of COURIER_REGIONS)."),
]


def _run(fn: Any) -> Any:
    return run_with_db(fn, refusals=(provision.ProvisionError,))


def _regions() -> Regions:
    return Regions(get_settings())


def _refuse_region(exc: RegionNotConfigured) -> typer.Exit:
    """An unconfigured region is a configuration mistake, told apart by exit code 2."""
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(2)


@app.command("create")
def create(slug: str, name: str = "", timezone: str = "UTC", region: RegionOption = None) -> None:
    """Create a tenant in a region (default: COURIER_DEFAULT_REGION)."""
    regions = _regions()
    try:
        regions.check(region or regions.default)
    except RegionNotConfigured as exc:
        raise _refuse_region(exc) from exc
    tenant = _run(
        lambda db: provision.ensure_tenant(
            db, slug, name or slug, timezone, region=region, regions=regions
        )
    )
    console.print(f"tenant {tenant.slug} ({tenant.id}) in region {tenant.region}")


@app.command("set-region")
def set_region(
    slug: str,
    region: str,
    force: Annotated[
        bool, typer.Option(help="Change it even though files stay in the old region.")
    ] = False,
) -> None:
    """Move a tenant to another configured region (its files are not moved)."""
    regions = _regions()
    try:
        regions.check(region)
    except RegionNotConfigured as exc:
        raise _refuse_region(exc) from exc
    tenant = _run(lambda db: provision.set_region(db, slug, region, regions, force=force))
    console.print(f"tenant {tenant.slug} is in region {tenant.region}")


def _days(days: int | None) -> str:
    return "kept forever" if days is None else f"{days} days"


async def _set_retention(
    db: Database, slug: str, primary: int | None, backup: int | None, forever: bool
) -> Tenant:
    async with db.transaction() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise provision.ProvisionError(f"no tenant {slug!r}")
        if forever:
            tenant.retention_days_primary = tenant.retention_days_backup = None
        if primary is not None:
            tenant.retention_days_primary = primary
        if backup is not None:
            tenant.retention_days_backup = backup
    return tenant


DaysOption = Annotated[
    int | None, typer.Option(min=1, help="Days to keep files; unset: unchanged.")
]


@app.command("set-retention")
def set_retention(
    slug: str,
    primary_days: DaysOption = None,
    backup_days: DaysOption = None,
    forever: Annotated[
        bool, typer.Option("--forever", help="Keep everything (clears both; then the options).")
    ] = False,
) -> None:
    """How many days the tenant's files stay in the primary and in the backup store.

    The backup service's retention job deletes older files, except what a held import
    or an unresolved incident still needs, and (primary store) what is not backed up.
    """
    if primary_days is None and backup_days is None and not forever:
        err.print("[red]error:[/] give --primary-days, --backup-days or --forever")
        raise typer.Exit(2)
    tenant = _run(lambda db: _set_retention(db, slug, primary_days, backup_days, forever))
    console.print(
        f"tenant {tenant.slug}: primary {_days(tenant.retention_days_primary)}, "
        f"backup {_days(tenant.retention_days_backup)}"
    )


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """Tenants by slug, with their time zone, region and id."""

    async def _list(db: Database) -> list[Tenant]:
        async with db.session() as s:
            return list(await s.scalars(select(Tenant).order_by(Tenant.slug)))

    tenants = [_view(t) for t in _run(_list)]
    if as_json:
        output.print_json(console, tenants)
        return
    output.table(
        console,
        ("slug", "name", "timezone", "region", "id"),
        [(t.slug, t.name, t.timezone, t.region, t.id) for t in tenants],
    )


@app.command("show")
def show(slug: str, as_json: AsJson = False) -> None:
    """Where the tenant's data lives: region, primary and backup store, encryption.

    Store URLs are shown without credentials or secret query parameters.
    """
    tenant: Tenant = _run(lambda db: provision.get_tenant(db, slug))
    regions = _regions()
    if as_json:
        output.print_json(console, _view(tenant, regions))
        if not regions.is_configured(tenant.region):
            raise typer.Exit(1)
        return
    console.print(f"tenant:     {tenant.slug} ({tenant.name})")
    console.print(f"id:         {tenant.id}")
    console.print(f"timezone:   {tenant.timezone}")
    console.print(f"calendar:   {tenant_calendar.describe(tenant)}", highlight=False)
    console.print(f"region:     {tenant.region}")
    console.print(f"retention:  primary {_days(tenant.retention_days_primary)}")
    console.print(f"            backup {_days(tenant.retention_days_backup)}")
    if not regions.is_configured(tenant.region):
        err.print(
            f"[red]region {tenant.region!r} has no configured store:[/] the tenant's files "
            f"cannot be written (configured regions: {', '.join(regions.names())})"
        )
        raise typer.Exit(1)
    stores = regions.stores(tenant.region)
    console.print(f"primary:    {public_url(stores.storage_url)}")
    console.print(f"encryption: {encryption_of(stores.storage_url, stores)}")
    console.print(f"backup:     {public_url(stores.backup_url) or 'none configured'}")
    if stores.backup_url:
        console.print(f"backup encryption: {encryption_of(stores.backup_url, stores)}")

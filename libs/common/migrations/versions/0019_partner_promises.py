"""Test imports and exports, scheduled imports, business calendars (and windows laid out
again when one changes), first-days holds and SSH key expiry.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("holiday_country", sa.String(8), nullable=True))
        batch.add_column(sa.Column("holiday_subdivision", sa.String(16), nullable=True))
        batch.add_column(sa.Column("closure_dates", sa.JSON(), nullable=True))
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("live_started_at", TS, nullable=True))
    with op.batch_alter_table("expectation_windows") as batch:
        batch.add_column(sa.Column("plan_key", sa.String(32), nullable=True))
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("apply_at", TS, nullable=True))
    op.create_index(
        "ix_imports_scheduled",
        "imports",
        ["apply_at"],
        postgresql_where=sa.text("apply_at IS NOT NULL"),
        sqlite_where=sa.text("apply_at IS NOT NULL"),
    )
    with op.batch_alter_table("sftp_account_keys") as batch:
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
        batch.add_column(sa.Column("reminded_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("password_policies") as batch:
        batch.add_column(
            sa.Column("key_max_age_days", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.drop_constraint("uq_exports_spec_id_period_start", type_="unique")
    op.create_index(
        "uq_exports_live_period",
        "exports",
        ["spec_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("NOT test"),
        sqlite_where=sa.text("NOT test"),
    )


def downgrade() -> None:
    op.drop_index("uq_exports_live_period", table_name="exports")
    with op.batch_alter_table("exports") as batch:
        batch.create_unique_constraint(
            "uq_exports_spec_id_period_start", ["spec_id", "period_start"]
        )
        batch.drop_column("test")
    with op.batch_alter_table("password_policies") as batch:
        batch.drop_column("key_max_age_days")
    with op.batch_alter_table("sftp_account_keys") as batch:
        batch.drop_column("reminded_days")
        batch.drop_column("expires_at")
    op.drop_index("ix_imports_scheduled", table_name="imports")
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("apply_at")
        batch.drop_column("test")
    with op.batch_alter_table("expectation_windows") as batch:
        batch.drop_column("plan_key")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("live_started_at")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("closure_dates")
        batch.drop_column("holiday_subdivision")
        batch.drop_column("holiday_country")

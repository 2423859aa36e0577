"""Retention: days per tenant for the primary and the backup store, and when and why
retention removed an object from either, in the backup ledger.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("retention_days_primary", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retention_days_backup", sa.Integer(), nullable=True))
    with op.batch_alter_table("backup_ledger") as batch:
        batch.add_column(sa.Column("deleted_at", TS, nullable=True))
        batch.add_column(sa.Column("deleted_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("primary_deleted_at", TS, nullable=True))
        batch.add_column(sa.Column("primary_deleted_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backup_ledger") as batch:
        batch.drop_column("primary_deleted_reason")
        batch.drop_column("primary_deleted_at")
        batch.drop_column("deleted_reason")
        batch.drop_column("deleted_at")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("retention_days_backup")
        batch.drop_column("retention_days_primary")

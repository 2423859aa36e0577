"""Backup ledger: every object version copied to a regional backup store, and the lease
of the reconciliation pass.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backup_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("backup_version_id", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_ledger")),
        sa.UniqueConstraint("key", "sha256", name=op.f("uq_backup_ledger_key_sha256")),
    )
    op.create_index("ix_backup_ledger_status_next", "backup_ledger", ["status", "next_attempt_at"])
    op.create_index("ix_backup_ledger_tenant_key", "backup_ledger", ["tenant_id", "key"])
    op.create_table(
        "backup_passes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("last_finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_passes")),
    )


def downgrade() -> None:
    op.drop_table("backup_passes")
    op.drop_index("ix_backup_ledger_tenant_key", table_name="backup_ledger")
    op.drop_index("ix_backup_ledger_status_next", table_name="backup_ledger")
    op.drop_table("backup_ledger")

"""Pickup watches: exports placed for partners, until they are downloaded.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pickup_watches",
        sa.Column("export_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("spec", sa.String(length=100), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collect_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_by", sa.String(length=64), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_pickup_watches_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("export_id", "path", name=op.f("pk_pickup_watches")),
    )
    op.create_index(
        "ix_pickup_watches_due",
        "pickup_watches",
        ["collected_at", "alerted_at", "collect_by"],
        unique=False,
    )
    op.create_index("ix_pickup_watches_path", "pickup_watches", ["tenant_id", "path"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pickup_watches_path", table_name="pickup_watches")
    op.drop_index("ix_pickup_watches_due", table_name="pickup_watches")
    op.drop_table("pickup_watches")

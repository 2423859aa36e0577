"""Tenant regions: every tenant's files live in the stores of its region.

Tenants older than regions are in `local`, the default region's name when
`COURIER_REGIONS` is unset.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("region", sa.String(32), nullable=False, server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("region")

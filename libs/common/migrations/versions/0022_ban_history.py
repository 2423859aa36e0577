"""Gateway bans keep their history: one row per ban, with who lifted it and when.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("gateway_bans") as batch:
        batch.drop_constraint("uq_gateway_bans_address", type_="unique")
        batch.add_column(sa.Column("lifted_at", TS, nullable=True))
        batch.add_column(sa.Column("lifted_by", sa.String(100), nullable=True))
    op.create_index("ix_gateway_bans_address_until", "gateway_bans", ["address", "until"])


def downgrade() -> None:
    op.drop_index("ix_gateway_bans_address_until", table_name="gateway_bans")
    # Keep each address's latest ban: the old schema holds one per address.
    op.execute(
        "DELETE FROM gateway_bans WHERE id NOT IN (SELECT id FROM gateway_bans b WHERE "
        "b.banned_at = (SELECT max(banned_at) FROM gateway_bans c WHERE c.address = b.address))"
    )
    with op.batch_alter_table("gateway_bans") as batch:
        batch.drop_column("lifted_by")
        batch.drop_column("lifted_at")
        batch.create_unique_constraint("uq_gateway_bans_address", ["address"])

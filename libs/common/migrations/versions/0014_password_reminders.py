"""Password reminders: the expiry a `password_expiring` alert was raised for.

The alert is staged in the outbox in the transaction that records this, so a bus
outage neither loses a reminder nor sends it twice.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sftp_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_reminded_for", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("sftp_accounts", schema=None) as batch_op:
        batch_op.drop_column("password_reminded_for")

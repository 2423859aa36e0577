"""Legacy SSH algorithms offered per account (to its allowlisted addresses).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sftp_accounts") as batch:
        batch.add_column(
            sa.Column("legacy_algorithms", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sftp_accounts") as batch:
        batch.drop_column("legacy_algorithms")

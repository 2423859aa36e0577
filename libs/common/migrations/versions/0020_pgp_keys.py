"""OpenPGP keys per tenant: Courier's key pair and partners' public keys.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pgp_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(16), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("feed_id", sa.Uuid(), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("bits", sa.Integer(), nullable=True),
        sa.Column("user_ids", sa.JSON(), nullable=False),
        sa.Column("key_created_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("secret_key", sa.Text(), nullable=True),
        sa.Column("reminded_days", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_pgp_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["sftp_accounts.id"],
            name=op.f("fk_pgp_keys_account_id_sftp_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feeds.id"],
            name=op.f("fk_pgp_keys_feed_id_feeds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pgp_keys")),
        sa.UniqueConstraint(
            "tenant_id", "fingerprint", name=op.f("uq_pgp_keys_tenant_id_fingerprint")
        ),
    )
    op.create_index("ix_pgp_keys_tenant_owner", "pgp_keys", ["tenant_id", "owner"])


def downgrade() -> None:
    op.drop_index("ix_pgp_keys_tenant_owner", table_name="pgp_keys")
    op.drop_table("pgp_keys")

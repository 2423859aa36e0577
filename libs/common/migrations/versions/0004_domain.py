"""domain: staff, roles, locations; feed ownership of leave balances; import approval

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owned(table: str) -> list[sa.Column[object] | sa.Constraint]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("feed_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=f"fk_{table}_feed_id_feeds", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    op.create_table(
        "locations",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        *_owned("locations"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_locations_tenant_id_code"),
    )
    op.create_table(
        "roles",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        *_owned("roles"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_roles_tenant_id_code"),
    )
    op.create_table(
        "staff",
        sa.Column("employee_id", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("location_code", sa.String(length=64), nullable=True),
        sa.Column("role_code", sa.String(length=64), nullable=True),
        *_owned("staff"),
        sa.UniqueConstraint("tenant_id", "employee_id", name="uq_staff_tenant_id_employee_id"),
    )
    with op.batch_alter_table("leave_balances") as batch_op:
        batch_op.add_column(sa.Column("feed_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_leave_balances_feed_id_feeds", "feeds", ["feed_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("imports") as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        # Duplicate look-ups (tenant + feed + content) and a feed's queue in arrival order.
        batch_op.create_index("ix_imports_feed_sha256", ["tenant_id", "feed_id", "sha256"])
        batch_op.create_index("ix_imports_feed_status", ["feed_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch_op:
        batch_op.drop_index("ix_imports_feed_status")
        batch_op.drop_index("ix_imports_feed_sha256")
        batch_op.drop_column("decided_at")
        batch_op.drop_column("decided_by")
        batch_op.drop_column("decision")
    with op.batch_alter_table("leave_balances") as batch_op:
        batch_op.drop_constraint("fk_leave_balances_feed_id_feeds", type_="foreignkey")
        batch_op.drop_column("feed_id")
    op.drop_table("staff")
    op.drop_table("roles")
    op.drop_table("locations")

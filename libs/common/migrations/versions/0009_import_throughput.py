"""import throughput: no per-row foreign-key checks on the audit and feed ownership

The audit (`import_records.import_id`) and the feed that last wrote a domain row
(`*.feed_id`) are written a million rows at a time by the bulk import; their
foreign keys cost one trigger call per row, half of a large import's merge. Both
are written only by the importer, from ids it has just read or created; nothing
deletes imports or feeds. `tenant_id` keeps its foreign key (tenant isolation).

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, referred table, on delete)
DROPPED = (
    ("import_records", "import_id", "imports", "CASCADE"),
    ("leave_balances", "feed_id", "feeds", "SET NULL"),
    ("locations", "feed_id", "feeds", "SET NULL"),
    ("roles", "feed_id", "feeds", "SET NULL"),
    ("staff", "feed_id", "feeds", "SET NULL"),
)


def upgrade() -> None:
    for table, column, referred, _ in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")


def downgrade() -> None:
    for table, column, referred, ondelete in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_{column}_{referred}", referred, [column], ["id"], ondelete=ondelete
            )

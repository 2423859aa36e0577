"""import throughput: set-based reference checks on the tables a bulk import writes

A bulk import writes a million audit rows and a million leave balances in one
statement each; their foreign keys cost one trigger call per row and reference,
half of such an import. On PostgreSQL those foreign keys become statement-level
triggers with the same meaning, checked once per statement over all its rows:

- a written row must name an existing parent (checked, and the parents locked
  against deletion, once per INSERT/UPDATE statement);
- deleting a parent deletes its children (ON DELETE CASCADE) or clears their
  reference (ON DELETE SET NULL), once per DELETE statement.

Ids never change, so ON UPDATE (NO ACTION) is not carried over. SQLite keeps the
foreign keys (it takes the row-wise path; nothing to gain there).

The audit's key becomes (import_id, row_number, seq), the order it is read in,
instead of a bigserial plus an index on (import_id, row_number): one index to
maintain per audited row instead of two, and no sequence. `seq` numbers the
several deleted records of an import (all on row 0); it is 0 otherwise.

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, parent table, on delete)
REFERENCES = (
    ("import_records", "import_id", "imports", "CASCADE"),
    ("leave_balances", "tenant_id", "tenants", "CASCADE"),
    ("leave_balances", "feed_id", "feeds", "SET NULL"),
    ("locations", "feed_id", "feeds", "SET NULL"),
    ("roles", "feed_id", "feeds", "SET NULL"),
    ("staff", "feed_id", "feeds", "SET NULL"),
)
PARENTS = ("imports", "tenants", "feeds")


def _check(table: str, column: str, parent: str) -> list[str]:
    name = f"courier_ref_{table}_{column}"
    function = f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        wanted uuid[];
        present integer;
        missing uuid;
    BEGIN
        -- One pass over the statement's rows; the parents are locked as a foreign
        -- key locks them (FOR KEY SHARE), so none can go before this commits.
        SELECT array_agg(k) INTO wanted
        FROM (SELECT DISTINCT {column} AS k FROM written WHERE {column} IS NOT NULL) d;
        IF wanted IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM 1 FROM {parent} p WHERE p.id = ANY (wanted) FOR KEY SHARE;
        GET DIAGNOSTICS present = ROW_COUNT;
        IF present < cardinality(wanted) THEN
            SELECT k INTO missing FROM unnest(wanted) k
            WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = k) LIMIT 1;
            RAISE foreign_key_violation USING
                MESSAGE = format('insert or update on table "{table}" violates reference '
                                 '{column} -> {parent}.id: %s is not present', missing),
                TABLE = '{table}', COLUMN = '{column}';
        END IF;
        RETURN NULL;
    END $$"""
    return [
        function,
        *(
            f"CREATE TRIGGER {name}_{event.lower()} AFTER {event} ON {table} "
            f"REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            for event in ("INSERT", "UPDATE")
        ),
    ]


def _gone(parent: str) -> list[str]:
    name = f"courier_gone_{parent}"
    actions = []
    for table, column, referred, ondelete in REFERENCES:
        if referred != parent:
            continue
        target = f"{column} IN (SELECT id FROM gone)"
        if ondelete == "CASCADE":
            actions.append(f"DELETE FROM {table} WHERE {target};")
        else:
            actions.append(f"UPDATE {table} SET {column} = NULL WHERE {target};")
    return [
        f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {" ".join(actions)}
            RETURN NULL;
        END $$""",
        f"CREATE TRIGGER {name} AFTER DELETE ON {parent} REFERENCING OLD TABLE AS gone "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    ]


def _audit_key() -> None:
    seq = sa.Column("seq", sa.Integer(), nullable=False, server_default="0")
    op.add_column("import_records", seq)
    op.execute(
        """
        UPDATE import_records SET seq = n.seq
        FROM (SELECT id, row_number() OVER (PARTITION BY import_id ORDER BY record_key, id) AS seq
              FROM import_records WHERE row_number = 0) n
        WHERE import_records.id = n.id
        """
    )
    with op.batch_alter_table("import_records") as batch:
        batch.drop_index("ix_import_records_import_row")
        batch.drop_constraint("pk_import_records", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_import_records", ["import_id", "row_number", "seq"])


def _audit_surrogate_key() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_import_records", "import_records", type_="primary")
        op.execute("ALTER TABLE import_records ADD COLUMN id bigserial")
        op.create_primary_key("pk_import_records", "import_records", ["id"])
        op.drop_column("import_records", "seq")
    else:
        op.rename_table("import_records", "import_records_keyed")
        op.create_table(
            "import_records",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("import_id", sa.Uuid(), nullable=False),
            sa.Column("row_number", sa.Integer(), nullable=False),
            sa.Column("record_key", sa.String(length=255), nullable=True),
            sa.Column("action", sa.String(length=16), nullable=False),
            sa.Column("changes", sa.JSON(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(
                ["import_id"], ["imports.id"], name="fk_import_records_import_id_imports",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name="pk_import_records"),
        )  # fmt: skip
        columns = "import_id, row_number, record_key, action, changes, error"
        op.execute(
            f"INSERT INTO import_records ({columns}) SELECT {columns} "
            "FROM import_records_keyed ORDER BY import_id, row_number, seq"
        )
        op.drop_table("import_records_keyed")
    op.create_index("ix_import_records_import_row", "import_records", ["import_id", "row_number"])


def upgrade() -> None:
    _audit_key()
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, parent, _ in REFERENCES:
        op.drop_constraint(f"fk_{table}_{column}_{parent}", table, type_="foreignkey")
        for sql in _check(table, column, parent):
            op.execute(sql)
    for parent in PARENTS:
        for sql in _gone(parent):
            op.execute(sql)


def downgrade() -> None:
    _audit_surrogate_key()
    if op.get_bind().dialect.name != "postgresql":
        return
    for parent in PARENTS:
        op.execute(f"DROP TRIGGER courier_gone_{parent} ON {parent}")
        op.execute(f"DROP FUNCTION courier_gone_{parent}()")
    for table, column, parent, ondelete in REFERENCES:
        name = f"courier_ref_{table}_{column}"
        op.execute(f"DROP TRIGGER {name}_insert ON {table}")
        op.execute(f"DROP TRIGGER {name}_update ON {table}")
        op.execute(f"DROP FUNCTION {name}()")
        op.create_foreign_key(
            f"fk_{table}_{column}_{parent}", table, parent, [column], ["id"], ondelete=ondelete
        )

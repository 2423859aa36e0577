"""One way onto the bus: received files are announced through the outbox.

Files recorded but never announced (the bus was down) get their event staged
here, so nothing waiting on the old catch-up pass is lost. Imports keep the key
of the partner's result file they wrote.

Revision ID: 0013
Revises: 0012
"""

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUBJECT = "courier.file.received"


def _stage_unannounced() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT f.id, f.tenant_id, t.slug, f.name, f.storage_key, f.size, f.sha256, "
            "f.source, f.account, f.received_at FROM received_files f "
            "JOIN tenants t ON t.id = f.tenant_id WHERE f.announced_at IS NULL"
        )
    ).all()
    outbox = sa.table(
        "outbox",
        sa.column("subject", sa.String),
        sa.column("msg_id", sa.String),
        sa.column("payload", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("attempts", sa.Integer),
    )
    for r in rows:
        file_id, tenant_id = uuid.UUID(str(r.id)), uuid.UUID(str(r.tenant_id))
        received = r.received_at if isinstance(r.received_at, datetime) else datetime.now(UTC)
        payload = {
            "version": 1,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"courier:file:{file_id}")),
            "occurred_at": received.isoformat(),
            "file_id": str(file_id),
            "tenant_id": str(tenant_id),
            "tenant": r.slug,
            "area": "inbound",
            "name": r.name,
            "storage_key": r.storage_key,
            "size": int(r.size),
            "sha256": r.sha256,
            "source": r.source,
            "account": r.account,
        }
        key = f"{SUBJECT}|{tenant_id}|{file_id}|{r.sha256}"
        bind.execute(
            outbox.insert().values(
                subject=SUBJECT,
                msg_id=hashlib.sha256(key.encode()).hexdigest()[:40],
                payload=json.loads(json.dumps(payload)),
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )


def upgrade() -> None:
    _stage_unannounced()
    with op.batch_alter_table("received_files", schema=None) as batch_op:
        batch_op.drop_index("ix_received_files_unannounced")
        batch_op.drop_column("announced_at")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("result_key")
    with op.batch_alter_table("received_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_received_files_unannounced", ["announced_at"], unique=False)

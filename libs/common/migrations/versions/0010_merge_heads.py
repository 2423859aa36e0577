"""One head again: the gateway, domain, sources, exports and incidents branches meet.

Revision ID: 0010
Revises: 0003, 0005, 0006, 0007, 0009
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | Sequence[str] | None = ("0003", "0005", "0006", "0007", "0009")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

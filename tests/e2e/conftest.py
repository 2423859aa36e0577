"""End-to-end fixtures: on-call paging through moto's SNS and an aiosmtpd mailbox."""

from tests.support.paging_fixtures import (  # noqa: F401
    clock,
    mailbox,
    paging,
    rota,
    sns,
    sns_server,
)

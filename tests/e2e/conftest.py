"""End-to-end fixtures: on-call paging through moto's SNS and an aiosmtpd mailbox;
OpenPGP keys for the tenant and its partner."""

from tests.support.paging_fixtures import (  # noqa: F401
    clock,
    mailbox,
    paging,
    rota,
    sns,
    sns_server,
)
from tests.support.pgp_fixtures import (  # noqa: F401
    partner_gpg,
    pgp_settings,
    stranger_gpg,
    tenant_keys,
    tenant_with_keys,
)

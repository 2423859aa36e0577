"""OpenPGP keys per tenant: keys made once per session, partners' `gpg` as the peer."""

from __future__ import annotations

from tests.support.paging_fixtures import (  # noqa: F401
    clock,
    expected_feed,
    mailbox,
    paging,
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

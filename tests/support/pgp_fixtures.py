"""OpenPGP fixtures (import them in a folder's conftest): keys made once per session.

- `tenant_keys`: Courier's key pair for the tenant `acme` (secret key under PASSPHRASE).
- `partner_gpg`: the partner's own `gpg`, with a key pair and the tenant's public key.
- `stranger_gpg`: someone else's `gpg` and key pair, known to no tenant.
- `pgp_settings`: the test's settings with COURIER_PGP_PASSPHRASE set.
- `tenant_with_keys`: `acme` holding Courier's key pair and the partner's public key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from courier.common import pgp, pgp_keys
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.settings import Settings
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair, tenant_key_pair

needs_gpg = pytest.mark.skipif(not pgp.gpg_available(), reason="needs gnupg (make test)")


@pytest.fixture(scope="session")
def tenant_keys() -> KeyPair:
    if not pgp.gpg_available():
        pytest.skip("needs gnupg (make test installs it)")
    return tenant_key_pair()


@pytest.fixture(scope="session")
def partner_gpg(tenant_keys: KeyPair) -> Iterator[GpgHome]:
    home = GpgHome("partner")
    home.generate("Acme Payroll <payroll-it@acme.example>")
    home.import_key(tenant_keys.public)
    try:
        yield home
    finally:
        home.close()


@pytest.fixture(scope="session")
def stranger_gpg(tenant_keys: KeyPair) -> Iterator[GpgHome]:
    home = GpgHome("stranger")
    home.generate("Someone Else <someone@elsewhere.example>")
    home.import_key(tenant_keys.public)
    try:
        yield home
    finally:
        home.close()


@pytest.fixture
def pgp_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pgp_passphrase": SecretStr(PASSPHRASE)})


@pytest.fixture
async def tenant_with_keys(
    db: Database, tenant: Tenant, tenant_keys: KeyPair, partner_gpg: GpgHome
) -> Tenant:
    await pgp_keys.import_key(
        db, tenant.slug, tenant_keys.secret, owner="courier", passphrase=PASSPHRASE, actor="test"
    )
    await pgp_keys.import_key(db, tenant.slug, partner_gpg.export(), actor="test")
    return tenant

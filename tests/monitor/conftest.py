from tests.support.paging_fixtures import (  # noqa: F401
    clock,
    expected_feed,
    mailbox,
    paging,
    rota,
    sns,
    sns_server,
)

from tests.monitor.conftest import *  # noqa: F403  (the same paging fixtures)

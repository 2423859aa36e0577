"""Who this process is, in heartbeats, leases and claims."""

from __future__ import annotations

import os
import socket
import uuid

# The narrowest column the name is stored in (lease owners, file claims).
MAX_LENGTH = 64


def instance_name(service: str) -> str:
    """`service@host:pid:random`, at most `MAX_LENGTH` characters.

    Readable where an operator meets it; the random part tells a restarted process
    apart from its predecessor when a container reuses the pid. A long host name is
    cut, never the part that makes the name unique.
    """
    tail = f":{os.getpid()}:{uuid.uuid4().hex[:6]}"
    head = f"{service}@"
    host = socket.gethostname()[: max(0, MAX_LENGTH - len(head) - len(tail))]
    return f"{head}{host}{tail}"

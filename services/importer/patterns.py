"""File-name patterns live in `courier.common.patterns`: the monitor matches them too."""

from courier.common.patterns import compile_pattern, matches

__all__ = ["compile_pattern", "matches"]

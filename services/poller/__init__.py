"""Poller: finds files nobody announced (and, later, pulls them from vendors' servers)."""

"""Courier: the SFTP import/export module of the workforce-management platform."""

__version__ = "0.1.0"

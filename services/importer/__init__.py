"""Importer: validates inbound files, applies them to the domain tables, audits every record."""

"""SFTP gateway: partners' drop (`/inbound`) and pickup (`/outbound`) areas over object storage."""

"""The key of the email hash: an environment variable in production, a generated file locally."""

from __future__ import annotations

import secrets
from pathlib import Path

import dagster as dg


class HashKey(dg.ConfigurableResource):
    """Provides the HMAC key for customer email hashes."""

    key: str | None = None  # production: dg.EnvVar("GLOBOLATTE_HASH_KEY")
    key_file: str | None = None  # local: generated once under GLOBOLATTE_HOME

    def get(self) -> str:
        if self.key:
            return self.key
        if not self.key_file:
            raise ValueError("HashKey needs `key` (GLOBOLATTE_HASH_KEY) or `key_file`")
        path = Path(self.key_file)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip()

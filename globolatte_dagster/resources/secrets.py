"""The key of the email hash: an environment variable in production, a generated file locally.

`GLOBOLATTE_HASH_KEY` is used whenever it is set, in both environments (`local_resources` passes it as a
`dg.EnvVar`). Locally without it, the key is generated once into `GLOBOLATTE_HOME/secrets/`:

- the key is written to a temporary file created with `O_CREAT | O_EXCL` and mode 0600, so it is never
  readable by others, not even for a moment;
- it is published with `link()` under the final name, which fails if the name exists: of many
  concurrent creators exactly one publishes, and every one of them then reads and uses that key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import dagster as dg


def read_or_create_key(path: str | Path) -> str:
    """The key in `path`, created atomically (mode 0600 from the first byte) if it does not exist yet."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another creator published first: use theirs
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"the hash key file {path} is empty: delete it to generate a new key")
    return key


class HashKey(dg.ConfigurableResource):
    """Provides the HMAC key for customer email hashes."""

    key: str | None = None  # dg.EnvVar("GLOBOLATTE_HASH_KEY"), whenever it is set
    key_file: str | None = None  # local: generated once under GLOBOLATTE_HOME

    def get(self) -> str:
        if self.key:
            return self.key
        if not self.key_file:
            raise ValueError("HashKey needs `key` (GLOBOLATTE_HASH_KEY) or `key_file`")
        return read_or_create_key(self.key_file)

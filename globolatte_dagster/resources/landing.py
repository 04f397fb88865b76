"""The landing zone: where business units upload files. A local folder, or an Azure Blob container.

The sensor and the raw assets only use `LandingZone`: list by prefix with a fingerprint per file, and
read files. Nothing above this module knows which implementation it talks to.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dagster as dg


@dataclass(frozen=True)
class LandingObject:
    path: str  # relative to the landing root, `/` separators
    size: int
    fingerprint: str  # changes whenever the content may have changed (etag, or mtime + size)
    # When a local file was last written (epoch seconds); None where an upload appears whole or not at all
    # (Blob Storage commits a blob atomically). The sensors wait while a local file may still be written.
    modified: float | None = None


class LandingZone(dg.ConfigurableResource):
    """Abstract landing zone."""

    def list(self, prefix: str = "") -> list[LandingObject]:
        """Every file whose path starts with `prefix`, sorted by path."""
        raise NotImplementedError

    def list_dirs(self, prefix: str) -> list[str]:
        """The folders directly under the folder `prefix` is in whose path starts with `prefix`.

        `sales/america/` lists every day folder of the region; `sales/america/2026-11` those of one month
        (as a delimiter listing with a name prefix does on Blob Storage). Full prefixes ending in `/`.
        """
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        raise NotImplementedError

    def read_stream(self, path: str) -> BinaryIO:
        """A readable binary stream of the file (callers close it)."""
        return io.BytesIO(self.read_bytes(path))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Upload a file (used by the simulator and tests)."""
        raise NotImplementedError

    @property
    def description(self) -> str:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        return any(o.path == path for o in self.list(path))


class LocalLandingZone(LandingZone):
    """A folder on disk (default `$GLOBOLATTE_HOME/landing`)."""

    root: str

    @property
    def description(self) -> str:
        return f"folder {self.root}"

    def _abs(self, path: str) -> Path:
        return Path(self.root) / path

    def list(self, prefix: str = "") -> list[LandingObject]:
        root = Path(self.root)
        base = root / prefix if prefix.endswith("/") or prefix == "" else (root / prefix).parent
        if not base.is_dir():
            return []
        out: list[LandingObject] = []
        for entry in _walk(base):
            rel = entry.path[len(str(root)) + 1 :].replace(os.sep, "/")
            if not rel.startswith(prefix):
                continue
            st = entry.stat()
            out.append(LandingObject(rel, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", st.st_mtime))
        out.sort(key=lambda o: o.path)
        return out

    def list_dirs(self, prefix: str) -> list[str]:
        folder, _, start = prefix.rpartition("/")
        base = Path(self.root) / folder
        if not base.is_dir():
            return []
        head = f"{folder}/" if folder else ""
        return sorted(f"{head}{e.name}/" for e in os.scandir(base) if e.name.startswith(start) and e.is_dir())

    def read_bytes(self, path: str) -> bytes:
        return self._abs(path).read_bytes()

    def read_stream(self, path: str) -> BinaryIO:
        return self._abs(path).open("rb")

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._abs(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # readers never see half a file


def _walk(base: Path) -> Iterator[os.DirEntry]:
    stack = [str(base)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue  # hidden and in-flight temporary files
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    yield entry

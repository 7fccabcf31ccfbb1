"""Content-addressed raw store: every fetched body, compressed, written once under warehouse/raw/.

A body's address is the sha256 of its uncompressed bytes, so the same body fetched twice is stored once,
and anyone can check a stored body against the hash the warehouse recorded for it.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path


class RawStoreError(Exception):
    pass


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class RawStore:
    def __init__(self, warehouse_root: Path):
        # Paths recorded in the warehouse are relative to its root, so the folder can be moved whole.
        self.warehouse_root = warehouse_root

    def relative_path(self, sha256: str) -> str:
        # Two levels of fan-out keep any one folder small after years of snapshots.
        return f"raw/{sha256[:2]}/{sha256[2:4]}/{sha256}.gz"

    def path(self, sha256: str) -> Path:
        return self.warehouse_root / self.relative_path(sha256)

    def put(self, body: bytes) -> str:
        """Store `body` (if not stored already) and return its sha256."""
        digest = sha256_hex(body)
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0 makes the gzip bytes depend on the body alone; write then rename so that a crash never
        # leaves a half-written body under its final name.
        handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".gz")
        try:
            with os.fdopen(handle, "wb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as gz:
                gz.write(body)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        target = self.path(sha256)
        try:
            body = gzip.decompress(target.read_bytes())
        except FileNotFoundError:
            raise RawStoreError(f"raw body {sha256} is missing from {target}") from None
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError; a cut file an EOFError
            raise RawStoreError(f"raw body {sha256} at {target} is corrupt ({type(exc).__name__}: {exc})") from None
        if sha256_hex(body) != sha256:
            raise RawStoreError(f"raw body at {target} does not match its address {sha256}")
        return body

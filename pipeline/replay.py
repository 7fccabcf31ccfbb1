"""Recorded HTTP responses served through httpx.MockTransport.

The demo and the tests collect through the very same fetch code as a live run; only the transport differs.
A recordings folder holds bodies and `manifest*.toml` files mapping each URL to a body and a status:

    [[response]]
    url = "https://openrouter.ai/api/v1/models"
    file = "openrouter/models.json"
    status = 200
    content_type = "application/json"

A URL that no manifest lists is answered 404, as a live server would answer a page that moved.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import httpx


class ReplayError(ValueError):
    pass


def load_recordings(folder: Path) -> dict[str, tuple[int, str, bytes]]:
    folder = Path(folder)
    manifests = sorted(folder.glob("manifest*.toml"))
    if not manifests:
        raise ReplayError(f"{folder}: no manifest*.toml with recorded responses")
    recordings: dict[str, tuple[int, str, bytes]] = {}
    for manifest in manifests:
        for entry in tomllib.loads(manifest.read_text(encoding="utf-8")).get("response", []):
            url = str(httpx.URL(entry["url"]))
            if url in recordings:
                raise ReplayError(f"{manifest}: {url} is recorded twice")
            body_path = (folder / entry["file"]).resolve()
            if folder.resolve() not in body_path.parents:
                raise ReplayError(f"{manifest}: {entry['file']} is outside {folder}")
            recordings[url] = (int(entry.get("status", 200)), entry.get("content_type", ""), body_path.read_bytes())
    return recordings


def replay_transport(folder: Path) -> httpx.MockTransport:
    recordings = load_recordings(folder)

    def handler(request: httpx.Request) -> httpx.Response:
        status, content_type, body = recordings.get(
            str(request.url), (404, "text/plain", b"not recorded: " + str(request.url).encode())
        )
        return httpx.Response(status, headers={"Content-Type": content_type}, content=body)

    return httpx.MockTransport(handler)

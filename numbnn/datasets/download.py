"""Download one file over HTTP(S) (or file://) to disk: progress bar, sha256 check, no partial files.

The bytes stream into a hidden temporary next to the destination while their sha256 is computed; only
a complete download whose digest is one of the accepted ones is renamed into place. A network error,
a wrong digest or Ctrl-C deletes the temporary, so the destination is either absent or complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Collection
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from numbnn._atomic import atomic_path
from numbnn.errors import ChecksumError, DatasetNotFoundError

# Looked up at call time so tests can substitute a fake opener (CI has no network).
urlopen = urllib.request.urlopen

_CHUNK = 1 << 16
TIMEOUT_SECONDS = 60


def download(url: str, destination, *, accept_sha256: Collection[str], size_hint: int | None = None,
             progress: bool = True) -> Path:
    """Fetch ``url`` into ``destination`` (atomically) and return the path.

    ``accept_sha256``: digests of the acceptable file contents; any other content raises ChecksumError.
    Network and file-system failures raise DatasetNotFoundError naming the URL.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetNotFoundError(f"cannot create {destination.parent} to download into: {error}") from None
    try:
        with atomic_path(destination) as tmp:
            digest = _fetch(url, tmp, size_hint, progress)
            if digest not in accept_sha256:
                raise ChecksumError(
                    f"download of {url} has sha256 {digest}, expected {' or '.join(sorted(accept_sha256))}; "
                    "nothing was saved"
                )
    except ChecksumError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise DatasetNotFoundError(f"could not download {url}: {reason}") from None
    return destination


def _fetch(url: str, target: Path, size_hint: int | None, progress: bool) -> str:
    """Stream ``url`` into ``target``; return the sha256 of the bytes received."""
    digest = hashlib.sha256()
    with urlopen(url, timeout=TIMEOUT_SECONDS) as response, target.open("wb") as out:
        length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
        total = int(length) if length and length.isdigit() else size_hint
        with _progress_bar(progress, total, url.rsplit("/", 1)[-1]) as advance:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                advance(len(chunk))
    return digest.hexdigest()


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int | None, label: str):
    """A rich progress bar on stderr (or nothing); the context value advances it by a byte count."""
    if not enabled:
        yield lambda count: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"download {label}", total=total)
        yield lambda count: bar.advance(task, count)

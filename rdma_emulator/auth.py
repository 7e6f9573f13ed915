"""Who may change a memory server's state: the deployment's control key, the tag that proves a request
was made with it, and the server's check of that tag against replay.

A deployment has one control key, 32 random bytes that only the controller and the memory servers
hold. A client signs each ALLOC, FREE, WRITE and CAS (protocol.SIGNED_OPS): the request's auth
trailer carries the send time, a random nonce and HMAC-SHA256 over the whole datagram up to the tag.
A server executes such a request only if the tag is right, the time is within WINDOW_S of its own
clock and the nonce has not been seen within that window; everything else gets Status.REFUSED.
A retransmission is signed anew (new time and nonce), so the replay check never refuses a retry.

The key lives in a file: 64 hex digits and a newline, readable by its owner only (mode 0600, like an
SSH private key; a file others may read is refused). `keygen` writes it; the memory server takes
its path with --key-file; the controller's side reads SREM_RDMA_KEY_FILE.
"""

from __future__ import annotations

import heapq
import hmac
import os
import secrets
import stat
import time
from collections.abc import Callable, Sequence
from hashlib import sha256
from pathlib import Path

from rdma_emulator.protocol import TAG_SIZE, Auth, Request

KEY_BYTES = 32
ENVIRONMENT = "SREM_RDMA_KEY_FILE"
"""Names the control key's file for the controller's side (controller/dataplane/external_memory.py)."""
CONTEXT = b"srem-rdma-control\0"
"""Prefixed to what is tagged, so that a tag made with this key means nothing to another protocol."""
WINDOW_S = 30.0
"""How far a request's time may be from the server's: it covers clock skew between hosts and a
retransmitted request's time on the way; the nonces seen are kept this long."""
MAX_REMEMBERED = 65_536
"""Nonces a server keeps while their requests are in the window: over a window of 2 x WINDOW_S that is
about 1,000 signed requests a second, past any controller's rate (a stage writes 16 KiB per WRITE).
Only requests with a valid tag are remembered, so only a key holder can fill it; beyond it, refused."""


class KeyFileError(ValueError):
    """A key file that cannot be used: the message names the file and what is wrong."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The key in `path`; KeyFileError when it is missing, readable by others or not a key."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read or change it (chmod 600 it)")
        text = os.read(fd, 4 * KEY_BYTES)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: not a control key ({2 * KEY_BYTES} hex digits, as `keygen` writes)")
    return key


def key_from_environment() -> bytes | None:
    """The key in the file SREM_RDMA_KEY_FILE names, None when it is unset."""
    path = os.environ.get(ENVIRONMENT)
    return load_key(path) if path else None


def write_key_files(targets: Sequence[tuple[Path, int | None]], keep: bool = False) -> bool:
    """Write one key to every (path, owner uid or None) target, mode 0600; whether a new key was made.

    Each file appears whole or not at all (written beside it, then linked to its name, which fails
    rather than replace a file that appeared meanwhile). Existing files are refused, or with `keep`
    their key (they must all hold the same one) is the one the missing files get."""
    existing = [path for path, _ in targets if path.exists() or path.is_symlink()]
    if existing and not keep:
        raise KeyFileError(f"{existing[0]}: exists (remove it for a new key, or keep it with --keep)")
    keys = {load_key(path) for path in existing}
    if len(keys) > 1:
        raise KeyFileError(f"{', '.join(map(str, existing))}: hold different keys (remove them all for a new key)")
    key = keys.pop() if keys else new_key()
    for path, owner in targets:
        if path not in existing:
            _write_one(path, key, owner)
    return not existing


def _write_one(path: Path, key: bytes, owner: int | None) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        try:
            if owner is not None:
                os.fchown(fd, owner, -1)
            os.write(fd, key.hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(staging, path)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or exc}") from None
    finally:
        staging.unlink(missing_ok=True)


def _tag(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, CONTEXT + signed, sha256).digest()


def sign(request: Request, key: bytes, timestamp_ns: int | None = None, nonce: int | None = None) -> Request:
    """The request with its auth trailer: now and a fresh nonce unless given."""
    timestamp_ns = time.time_ns() if timestamp_ns is None else timestamp_ns
    nonce = secrets.randbits(64) if nonce is None else nonce
    tag = _tag(key, request.signed_part(timestamp_ns, nonce))
    return Request(request.op, request.wr_id, request.region, request.rkey, request.offset, request.length, request.payload,
                   Auth(timestamp_ns, nonce, tag))


class Verifier:
    """A server's check of signed requests: right tag, time within the window, nonce not seen in it."""

    def __init__(self, key: bytes, window_s: float = WINDOW_S, max_remembered: int = MAX_REMEMBERED,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._key = key
        self._window_ns = int(window_s * 1e9)
        self._max = max_remembered
        self._clock_ns = clock_ns
        self._seen: set[int] = set()
        self._expiry: list[tuple[int, int]] = []
        """(timestamp, nonce) of the remembered nonces, oldest first: each is forgotten once its time
        leaves the window, when a replay of its request is refused as stale anyway."""

    @property
    def remembered(self) -> int:
        return len(self._seen)

    def refusal(self, request: Request) -> str | None:
        """None when the request may run (its nonce is then remembered), else why not: unsigned,
        bad_tag, stale, replayed or busy (too many nonces in the window)."""
        auth = request.auth
        if auth is None or len(auth.tag) != TAG_SIZE:
            return "unsigned"
        if not hmac.compare_digest(auth.tag, _tag(self._key, request.signed_part(auth.timestamp_ns, auth.nonce))):
            return "bad_tag"
        now = self._clock_ns()
        if abs(now - auth.timestamp_ns) > self._window_ns:
            return "stale"
        while self._expiry and self._expiry[0][0] < now - self._window_ns:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if auth.nonce in self._seen:
            return "replayed"
        if len(self._seen) >= self._max:
            return "busy"
        self._seen.add(auth.nonce)
        heapq.heappush(self._expiry, (auth.timestamp_ns, auth.nonce))
        return None

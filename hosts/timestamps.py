"""The kernel's software receive timestamps: asking a socket for them, reading a frame's, waiting until they flow.

SO_TIMESTAMPING with SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, not SO_TIMESTAMPNS. The kernel
stamps received frames only while some socket wants stamps, and turns that on through deferred work
(net_enable_timestamp flips a static key from a work queue), which on a loaded machine can leave frames unstamped
for a while after the socket asked. SO_TIMESTAMPNS stamps such a frame when it is read, silently: its "receive
time" is the read's, a made-up latency (negative ones too, measured against a send time taken later than it).
SO_TIMESTAMPING reports no stamp for it (or a zero one), so it can be told apart and left out.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterable

SO_TIMESTAMPING = 37
"""SO_TIMESTAMPING_OLD: on 64-bit Linux its message holds three struct timespec (software, legacy, hardware)."""
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
RECEIVE_STAMPS = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
"""Stamp received frames in software and report those stamps."""
ANCILLARY_SPACE = socket.CMSG_SPACE(3 * 16)
"""recvmsg's ancillary buffer for one SO_TIMESTAMPING message."""
_TIMESPEC = struct.Struct("qq")
WARM_UP_POLL_S = 0.01
"""How long the warm-up waits for each datagram to itself before sending the next."""


def enable(sock: socket.socket) -> int:
    """Ask the kernel to stamp the frames `sock` receives. Returns CLOCK_REALTIME in ns read just before: no stamp
    of a frame this socket receives can be older (see `software_stamp`'s not_before_ns)."""
    enabled_ns = time.time_ns()
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, RECEIVE_STAMPS)
    return enabled_ns


def software_stamp(ancillary: Iterable[tuple[int, int, bytes]], not_before_ns: int) -> int | None:
    """The kernel's receive time (CLOCK_REALTIME ns) of a frame, from recvmsg's ancillary data; None when the kernel
    did not stamp it (no SO_TIMESTAMPING message, or a zero software stamp) or when the stamp is older than
    `not_before_ns` (the socket's enablement: such a stamp was taken before this socket could receive the frame)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            stamp = seconds * 1_000_000_000 + nanoseconds
            return stamp if stamp > 0 and stamp >= not_before_ns else None
    return None


def wait_until_stamping(timeout_s: float) -> str | None:
    """Wait until the kernel stamps received packets (some socket asked already: this asks for nothing itself).
    Datagrams to itself over loopback, each read with its stamp, until one comes stamped. None once one does;
    otherwise why stamping could not be confirmed within `timeout_s` (no way over loopback, or no stamp)."""
    deadline = time.monotonic() + timeout_s
    came_back = False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # Report stamps only (no RX_SOFTWARE): a stamp then shows the kernel stamps for the caller's socket.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_SOFTWARE)
            sock.bind(("127.0.0.1", 0))
            since_ns = time.time_ns()
            while time.monotonic() < deadline:
                sock.sendto(b"stamp?", sock.getsockname())
                if select.select([sock], [], [], WARM_UP_POLL_S)[0]:
                    _, ancillary, _, _ = sock.recvmsg(16, ANCILLARY_SPACE)
                    if software_stamp(ancillary, since_ns) is not None:
                        return None
                    came_back = True
                time.sleep(WARM_UP_POLL_S)
    except OSError as exc:
        return f"loopback datagrams failed ({exc.strerror or exc})"
    if not came_back:
        return f"no datagram came back over loopback within {timeout_s:g} s (is lo down?)"
    return f"the kernel stamped no received packet within {timeout_s:g} s"

"""The testbed's links: the topology's bandwidth as an htb rate on each end of a link, its delay with netem
where the kernel has netem, and checksum offload off on every end.

Bandwidth: BMv2 forwards a few thousand packets per second on these machines, orders of magnitude
below a topology's 10-40 Gbps, so at scale 1 the htb rate is a ceiling no traffic reaches and a
link's capacity is BMv2's speed. `bandwidth_scale` multiplies every link's rate; scaled by the same
factor as the chains' traffic, each link carries the share of its capacity the model assumes.

Delay: netem is a kernel module some kernels lack (these machines'); without it the delay is not
emulated and the testbed says so once at start, and the topology's propagation delay per hop is
what is reported beside measured latency (`propagation_delay_ms`).

Checksum offload is off (Mininet's TCULink) because BMv2 reads frames off a veth before the kernel
fills in a deferred UDP/TCP checksum and sends them on as they are: a receiving host would drop them.
"""

from __future__ import annotations

import functools
import subprocess

from controller.model.topology import LinkSpec, Topology
from controller.testbed.mininet_api import TCIntf, TCULink


class ShapedIntf(TCIntf):
    """Mininet's TCIntf, for data-centre rates: no 1 Gbps limit on `bw` (Mbit/s), and an htb quantum of one
    frame (tc's default, the rate / 10, is over its limit at these rates and makes tc warn)."""

    bwParamMax = 10_000_000

    def bwCmds(self, bw: float | None = None, **_: object) -> tuple[list[str], str]:  # noqa: N802 (Mininet's name)
        if bw is None:
            return [], " root "
        return (["%s qdisc add dev %s root handle 5:0 htb default 1",
                 "%s class add dev %s parent 5:0 classid 5:1 htb " + f"rate {bw:f}Mbit burst 15k quantum 1514"], " parent 5:1 ")


class ShapedLink(TCULink):
    """A veth pair with ShapedIntf ends, checksum offload off (TCULink)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("cls1", ShapedIntf)
        kwargs.setdefault("cls2", ShapedIntf)
        super().__init__(*args, **kwargs)


@functools.cache
def netem_available() -> bool:
    """Whether this kernel has netem: add it to the loopback of a throwaway namespace (gone with the command)."""
    try:
        done = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def shaping(link: LinkSpec, bandwidth_scale: float, delay: bool) -> dict[str, object]:
    """Mininet link parameters for a topology link: bw in Mbit/s, delay only when it is emulated."""
    params: dict[str, object] = {"bw": link.bandwidth_gbps * 1000.0 * bandwidth_scale}
    if delay and link.delay_ms > 0:
        params["delay"] = f"{link.delay_ms:g}ms"
    return params


def delay_note(topology: Topology) -> str:
    delays = [link.delay_ms for link in topology.spec.links]
    return (f"link delay is not emulated (this kernel has no netem); latencies are reported beside the topology's "
            f"propagation delay per hop ({min(delays):g}-{max(delays):g} ms per link)")

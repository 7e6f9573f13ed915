"""srem.p4 on BMv2 simple_switch_grpc, driven by the controller over P4Runtime, with scapy-built packets
on veth pairs in a network namespace this test creates (and deletes, whatever happens).

Two switches s1 - s2, server m1 under s1, an EMAC port on each switch. One chain of each kind:
NAT in s1's LM, DSCP classifier in s2's EM (a real `srem emac` on s2's EMAC port reads the table the
controller wrote into a real `srem memserver`, both in the namespace), firewall on server m1, rate
limiter in s2's LM, and a rejected chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bmv2_bed import SKIP_REASON, in_netns, namespace, simple_switch
from controller.dataplane import entries as E
from controller.dataplane.deploy import Deployer, DeployReport
from controller.dataplane.entries import DropReason
from controller.dataplane.external_memory import ExternalMemory
from controller.dataplane.layout import EMAC_PORT, HOST_PORT, Layout
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient
from controller.dataplane.reconciler import DataPlane
from controller.dataplane.rules import NAT_PORT, chain_flow
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.scenario import DataplaneParams
from factories import placement_of, substrate, topology_dict, vnf, workload
from rdma_emulator.processes import Proc, start
from srem_formats.wire import ETHERTYPE_IPV4, ETHERTYPE_NSH, Nsh

pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)
DROP_CHAIN_REJECTED = DropReason.CHAIN_REJECTED


@pytest.fixture
def netns() -> Iterator[str]:
    pairs = [("s1p1", "h1"), ("s1p2", "s2p2"), ("s1p3", "m1"), ("s1pe", "emac1"), ("s2p1", "h2"), ("s2pe", "emac2")]
    with namespace(f"srem-t{os.getpid()}", pairs) as name:
        yield name


@pytest.fixture
def switches(netns: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """BMv2 for s1 and s2 inside the namespace, their P4Runtime servers on unix sockets."""
    interfaces = {"s1": {HOST_PORT: "s1p1", 2: "s1p2", 3: "s1p3", EMAC_PORT: "s1pe"}, "s2": {HOST_PORT: "s2p1", 2: "s2p2", EMAC_PORT: "s2pe"}}
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(simple_switch(netns, ports, tmp_path, name))[0] for name, ports in interfaces.items()}


def frame(src_ip: int, dst_ip: int, dport: int) -> str:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=_ip(src_ip), dst=_ip(dst_ip), ttl=64)
                 / UDP(sport=5000, dport=dport) / (b"srem" * 8)).hex()


def test_chains_of_every_kind_on_bmv2(netns: str, switches: dict[str, str], tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    topo = topology_dict(["s1", "s2"], ["m1"], [("s1", "s2", 10.0, 0.01), ("m1", "s1", 10.0, 0.01)])
    sub = substrate(topo, [vnf("firewall", 4), vnf("nat", 4), vnf("rate_limiter", 4), vnf("classifier", 4)])
    chains = [(["nat"], "s1", "s2"), (["classifier"], "s1", "s2"), (["firewall"], "s1", "s2"), (["rate_limiter"], "s2", "s1"),
              (["firewall"], "s2", "s1")]
    placement = {"nat#0": "lm:s1", "classifier#0": "em:s2", "firewall#0": "m1", "rate_limiter#0": "lm:s2"}
    w = workload(sub, [(c, a, b, [1.0], [100.0]) for c, a, b in chains], placement)
    result = StepEvaluator(sub).evaluate(w, 0, w.initial_placement, placement_of(sub, placement))
    assert [r.accepted for r in result.requests] == [True] * 5
    layout = Layout(sub.spec.topology)
    schema = P4Schema.load()
    clients = {n: SwitchClient(n, a, 1, schema, timeout_s=10.0) for n, a in switches.items()}
    plane = DataPlane(layout, sub, clients, Pipeline.load(), drain_s=0.0)
    in_ns = ("ip", "netns", "exec", netns)
    procs: list[Proc] = []
    try:
        procs.append(start("memserver", "--listen", "127.0.0.1:0", prefix=in_ns))
        memory_server = layout.memory_server("s2").server_id
        host, port = procs[0].address("memserver")
        # One EMAC process for both switches' EMAC ports.
        procs.append(start("emac", "--interface", "emac1", "--interface", "emac2", "--memory-server", f"{memory_server}={host}:{port}",
                           prefix=in_ns))
        deployer = Deployer(plane, ExternalMemory(layout, sub, {memory_server: (host, port)}), DataplaneParams())

        def deploy(step: StepResult) -> DeployReport:
            deployment = deployer.deployment(w, step)
            return deployer.apply(replace(deployment, paths=deployment.paths[:4] + (None,)))  # the last chain is rejected

        assert sorted(plane.connect()) == ["s1", "s2"]
        rules = in_netns(netns, lambda: deploy(result)).deployment.rules  # type: ignore[attr-defined]
        flows = [chain_flow(layout, sub, r) for r in w.requests]
        classifier = sub.instance_index["classifier#0"]
        rule = next(r for r in rules[classifier] if r.key == flows[1])
        seen = drive(netns, tmp_path, {"ifaces": ["h1", "h2", "m1", "s2p2"], "servers": ["m1"], "seconds": 2.0,
                                       "send": [["h1" if i < 3 else "h2", frame(f.src, f.dst, f.dst_port)] for i, f in enumerate(flows)]})

        def delivered(iface: str, flow_index: int) -> list[Ether]:
            f = flows[flow_index]
            got = [Ether(b) for b in seen[iface]]
            return [p for p in got if IP in p and p[IP].src == _ip(f.src) and p[IP].dst == _ip(f.dst)
                    and (p[UDP].dport in (f.dst_port, NAT_PORT + flow_index))]

        # NAT in s1's LM: applied in the switch, NSH popped at s2, destination port rewritten.
        nat = delivered("h2", 0)
        assert len(nat) == 1 and nat[0].type == ETHERTYPE_IPV4 and nat[0][UDP].dport == NAT_PORT + 0
        assert nat[0][UDP].chksum == 0 and nat[0][IP].chksum == IP(bytes(nat[0][IP])).chksum
        # In transit s1 -> s2: NSH with SPI 1, all functions done (SI 0), version in the TLV.
        transit = [Nsh.unpack(b[14:]) for b in seen["s2p2"] if int.from_bytes(b[12:14], "big") == ETHERTYPE_NSH]
        assert any(n.spi == 1 and n.si == 0 and n.version >= 1 for n in transit)
        assert any(n.spi == 2 and n.si == 1 for n in transit)
        # Classifier in s2's EM: the EMAC found the rule in the memory server (n_f reads) and the DSCP was applied.
        emac_metrics = in_netns(netns, procs[1].metrics)
        assert emac_metrics["srem_emac_lookups_total{result=hit}"] == 1
        assert emac_metrics["srem_emac_rdma_reads_total"] == 1 + sub.instances[classifier].type.rdma_accesses
        dscp = delivered("h2", 1)
        assert len(dscp) == 1 and dscp[0][IP].tos >> 2 == rule.dscp
        # Firewall on server m1: the packet went to the server with NSH (SPI 3, SI 1) and came back to be delivered.
        at_server = [Nsh.unpack(b[14:]) for b in seen["m1"] if int.from_bytes(b[12:14], "big") == ETHERTYPE_NSH]
        assert [(n.spi, n.si) for n in at_server] == [(3, 1)]
        assert len(delivered("h2", 2)) == 1
        # Rate limiter in s2's LM (green: within its rate), delivered to h1; the rejected chain never is.
        assert len(delivered("h1", 3)) == 1 and delivered("h1", 4) == []
        s1, s2 = clients["s1"], clients["s2"]
        assert all(s1.read_counter(E.CHAIN_COUNTER, spi)[spi][0] == 1 for spi in (1, 2, 3))
        assert s2.read_counter(E.CHAIN_COUNTER, 4)[4][0] == 1
        assert s1.read_counter(E.VNF_COUNTER, sub.instance_index["nat#0"])[sub.instance_index["nat#0"]][0] == 1
        assert s1.read_counter(E.VNF_COUNTER, sub.instance_index["firewall#0"])[sub.instance_index["firewall#0"]][0] == 1
        assert s2.read_counter(E.VNF_COUNTER, classifier)[classifier][0] == 1
        assert s2.read_counter(E.DROP_COUNTER, DROP_CHAIN_REJECTED)[DROP_CHAIN_REJECTED][0] == 1

        # Move the classifier from s2's EM to s1's: a new region, written before s1 names it; s2's freed after.
        moved = StepEvaluator(sub).evaluate(w, 0, result.placement, placement_of(sub, {**placement, "classifier#0": "em:s1"}))
        assert moved.requests[1].accepted
        in_netns(netns, lambda: deploy(moved))
        assert in_netns(netns, procs[0].metrics)["srem_memserver_regions"] == 1
        again = [["h1", frame(flows[1].src, flows[1].dst, flows[1].dst_port)]]
        seen = drive(netns, tmp_path, {"ifaces": ["h1", "h2"], "servers": [], "seconds": 1.0, "send": again})
        dscp = delivered("h2", 1)
        assert len(dscp) == 1 and dscp[0][IP].tos >> 2 == rule.dscp
        assert in_netns(netns, procs[1].metrics)["srem_emac_lookups_total{result=hit}"] == 2
        assert s1.read_counter(E.VNF_COUNTER, classifier)[classifier][0] == 1
        # Every answer of the real EMAC matched the request it answered; no frame came from where it may not.
        for client in (s1, s2):
            drops = client.read_counter(E.DROP_COUNTER)
            assert {r: drops[r][0] for r in DropReason if drops[r][0] and r is not DropReason.CHAIN_REJECTED} == {}
    finally:
        plane.close()
        for proc in procs:
            proc.stop()


def drive(netns: str, tmp_path: Path, spec: dict[str, object]) -> dict[str, list[bytes]]:
    """Run the packet driver in the namespace; the frames each interface received."""
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(Path(__file__).with_name("bmv2_packets.py")),
                           str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    return {k: [bytes.fromhex(h) for h in v] for k, v in json.loads(done.stdout)["seen"].items()}


def _ip(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))

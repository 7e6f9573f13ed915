"""The testbed's network, built from the topology file the simulator reads, and the handle the live loop
drives it through: switches, hosts, processes in hosts, external memory, status and teardown.

Nodes (Mininet names), all numbers from controller/dataplane/layout.py:
- each topology switch S: a Bmv2Switch named S (device id = switch id, P4Runtime at 127.0.0.1:50000+id, or on
  another address for a controller in another container: TestbedOptions.grpc_host);
- its traffic host `h-S` on port HOST_PORT (`-` is not allowed in topology names, so it clashes with none),
  interface eth0, the layout's host_ip and host_mac;
- each rack server M: a Mininet host M, interfaces eth0, eth1, ... for its links in file order, the
  layout's ip (on eth0) and mac;
- each switch's EMAC port EMAC_PORT: a veth whose other end, PREFIX<id>e, stays in the root namespace
  for the EMAC.
Links between switches, and from servers to switches, use the layout's port numbers on both ends.

Addressing without ARP (srem.p4 drops ARP: port_role.p4): each host has its address as a /32 and
reaches 10.0.0.0/8 through GATEWAY, an address no node has, pinned (permanent neighbour entry) to
its switch's MAC. So a host sends every frame to its switch, and the switches rewrite the destination
MAC per hop (forwarding.p4, steering.p4) up to the last one, which writes the host's or server's.

Root-namespace interfaces are PREFIX<switch id>p<port> (switch ends) and PREFIX<switch id>e (EMAC
ends). Their MACs are their own (never a layout MAC, which frames are addressed to), and they have
IPv6 off, IPv4 forwarding off and ARP replies off: the root namespace neither answers nor routes
anything the testbed carries.

Who owns what: `Testbed.start` builds the network in this process (Mininet's host shells live as
long as the Python that made them); `srem testbed up` runs it in a holder process
(controller/testbed/holder.py) and `Testbed.attach` gives any other process the same handle, minus
the Mininet objects: everything it needs (PIDs, interfaces, commands) is in the state file
(controller/testbed/state.py), and whatever a handle starts is recorded there, so `down` removes it.
A handle in another PID namespace (the controller's container under docker compose) is not `local`: it
reaches the testbed through its sockets only (P4Runtime, the hosts' control sockets, the memory servers);
the memory servers and the EMAC may run elsewhere too (TestbedOptions.remote_*), recorded for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.dataplane import tls
from controller.dataplane.layout import EMAC_PORT, HOST_PORT, Layout
from controller.dataplane.tls import TlsFiles
from controller.errors import SremError
from controller.model.topology import NodeName, Topology, topology_from_dict
from controller.testbed import inventory, processes, state as st
from controller.testbed.inventory import DownReport, TestbedStatus
from controller.testbed.preflight import missing
from controller.testbed.processes import READY_TIMEOUT_S
from controller.testbed.state import HostRecord, ProcessRecord, SwitchRecord, TestbedState
from hosts.rack_server_client import command as rack_server_command
from rdma_emulator.auth import KeyFileError, load_key, write_key_files
from srem_formats.arguments import is_local, parse_address

log = logging.getLogger(__name__)

PREFIX = "srm"
GATEWAY = "10.255.255.254"
NETWORK = "10.0.0.0/8"


def traffic_host(switch: NodeName) -> str:
    return f"h-{switch}"


def switch_interface(switch_id: int, port: int, prefix: str = PREFIX) -> str:
    return f"{prefix}{switch_id}p{port}"


def emac_interface(switch_id: int, prefix: str = PREFIX) -> str:
    return f"{prefix}{switch_id}e"


def _root_mac(kind: int, switch_id: int, port: int) -> str:
    """A root-namespace end's MAC: kinds 0xf0 (switch port) and 0xf1 (EMAC end), which no layout MAC uses."""
    return f"02:53:{kind:02x}:{switch_id >> 8:02x}:{switch_id & 0xFF:02x}:{port & 0xFF:02x}"


@dataclass(frozen=True)
class TestbedOptions:
    bandwidth_scale: float = 1.0
    """Every link's htb rate is its topology bandwidth times this (links.py says why one would scale)."""
    emulate_delay: bool = True
    """Apply the topology's link delay where the kernel has netem."""
    external_memory: bool = True
    """Start one memory server per rack server and the EMAC on every switch's EMAC port."""
    host_processes: bool = True
    """Start the rack servers' VNF service and the traffic hosts' agents (hosts/)."""
    switch_args: tuple[str, ...] = ()
    """More simple_switch_grpc options, before its `--` (e.g. --pcap DIR to capture every port)."""
    memserver_capacity_mb: float = 1024.0
    """Memory each memory server registers regions in."""
    memserver_latency_ns: float = 0.0
    """Added to every RDMA access by the memory servers (a scenario's rdma_access_delay_ns, if wanted)."""
    ready_timeout_s: float = READY_TIMEOUT_S
    grpc_host: str = "127.0.0.1"
    """Where the switches' P4Runtime servers listen (0.0.0.0: every interface, for a controller in another container)."""
    advertise_host: str | None = None
    """The host the state file gives controllers for the switches' P4Runtime ports (default grpc_host)."""
    remote_memory_servers: dict[str, str] = field(default_factory=dict)
    """Rack server -> HOST:PORT of its memory server run elsewhere (one container each, under docker compose): recorded
    for the controller, not started (external_memory must be False)."""
    remote_emac_metrics: str | None = None
    """HOST:PORT of the /metrics of an EMAC run elsewhere on this network's EMAC ends."""
    tls_dir: Path | None = None
    """Where to make the deployment's CA and certificates: the switches then serve P4Runtime over TLS and accept only
    the controller's client certificate. Required when grpc_host is off loopback (plaintext stays on this machine)."""

    def __post_init__(self) -> None:
        if self.tls_dir is None and not is_local(f"{self.grpc_host}:0"):
            raise ValueError(f"switches listening on {self.grpc_host} need TLS (a directory for the certificates)")
        if self.external_memory and (self.remote_memory_servers or self.remote_emac_metrics):
            raise ValueError("memory servers or an EMAC run elsewhere, and external_memory starts them here: choose one")


class Testbed:
    """A running testbed. `start` builds one in this process, `attach` joins the one that is up."""

    def __init__(self, state: TestbedState) -> None:
        self.state = state
        self.run_dir = Path(state.run_dir)
        self.topology: Topology = topology_from_dict(state.topology, state.topology_source)
        self.layout = Layout(self.topology.spec)
        self._net: Any = None
        """The Mininet object when this process built the network; None when attached."""
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        """Processes this handle started (reaped when they end); keyed like state.processes."""

    # Bringing up and attaching

    @classmethod
    def start(cls, topology: Topology, run_dir: Path, options: TestbedOptions = TestbedOptions(),
              holder: bool = False) -> Testbed:
        """Build the network and start every switch (and what `options` asks for); returns when all are ready.
        On any failure everything started so far is removed and the error raised. `holder`: this process is
        the testbed's holder (recorded, so `down` signals it)."""
        from controller.testbed.links import delay_note, netem_available

        _preflight(topology, run_dir, options.grpc_host)
        run_dir = run_dir.resolve()
        for sub in ("logs", "ctl"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        delayed = any(link.delay_ms > 0 for link in topology.spec.links)
        emulate = options.emulate_delay and delayed and netem_available()
        if delayed and not emulate:
            log.warning(delay_note(topology))
        state = TestbedState(run_dir=str(run_dir), topology=topology.to_dict(), topology_source=topology.source, prefix=PREFIX,
                             created=time.time(), delay_emulated=emulate, bandwidth_scale=options.bandwidth_scale,
                             pid_namespace=st.pid_namespace(), memory_servers=dict(options.remote_memory_servers),
                             emac_metrics=options.remote_emac_metrics,
                             tls_dir=str(options.tls_dir.resolve()) if options.tls_dir is not None else None)
        if holder:
            state.processes["holder"] = st.process_record("holder", "holder", os.getpid(), sys.argv)
        st.save(state)
        st.set_pointer(state.path)
        testbed = cls(state)
        try:
            testbed._build(options)
            if options.external_memory:
                testbed.start_external_memory(options.memserver_capacity_mb, options.memserver_latency_ns, options.ready_timeout_s)
            if options.host_processes:
                testbed.start_host_processes(options.ready_timeout_s)
            testbed._update(lambda s: setattr(s, "status", "ready"))
        except BaseException:
            testbed.stop()
            raise
        return testbed

    @classmethod
    def attach(cls, state_path: Path | None = None) -> Testbed:
        """The testbed that is up (or the one whose state file is given), for a process that did not build it."""
        path = state_path or st.pointed()
        if path is None:
            raise SremError("no testbed is up (srem testbed up starts one)", where="testbed")
        return cls(st.load(path))

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _update(self, change: Callable[[TestbedState], None]) -> None:
        self.state = st.update(self.run_dir, change)

    @property
    def local(self) -> bool:
        """Whether this handle shares the testbed's PID namespace: it can check its processes by PID and restart
        them. A controller in another container cannot; it sees the testbed through its sockets only."""
        return self.state.pid_namespace == st.pid_namespace()

    def reload(self) -> TestbedState:
        """The state as on disk (another handle may have recorded processes or restarted a switch)."""
        self.state = st.load(self.state.path)
        return self.state

    # Building

    def _build(self, options: TestbedOptions) -> None:
        # Mininet is imported where the network is built: a process that attaches (the controller's container) has none.
        from controller.testbed import bmv2
        from controller.testbed.links import ShapedLink, shaping
        from controller.testbed.mininet_api import Host, Mininet

        layout, logs = self.layout, self.run_dir / "logs"
        roots = [switch_interface(sw.switch_id, port) for sw in layout.switches.values()
                 for port in [HOST_PORT, *sw.ports.values(), EMAC_PORT]]
        roots += [emac_interface(sw.switch_id) for sw in layout.switches.values()]
        self._update(lambda s: s.interfaces.extend(roots))  # recorded before any exists: a crash leaves nothing unrecorded

        deployment = None
        if options.tls_dir is not None:
            # Each switch's certificate names what a controller dials: the advertised host, or loopback.
            dialled = options.advertise_host or (options.grpc_host if options.grpc_host not in ("0.0.0.0", "::") else None)
            names = [*([dialled] if dialled else []), "127.0.0.1", "localhost"]
            deployment = tls.create(options.tls_dir, {name: names for name in layout.switches})
        net = self._net = Mininet(topo=None, switch=bmv2.Bmv2Switch, host=Host, controller=None, link=ShapedLink, build=False)
        hosts: dict[str, HostRecord] = {}
        for name, sw in layout.switches.items():
            net.addSwitch(name, cls=bmv2.Bmv2Switch, device_id=sw.switch_id, grpc_address=_grpc(options.grpc_host, sw.grpc_address),
                          log_dir=logs, extra_args=options.switch_args,
                          tls=deployment.switch(name) if deployment is not None else None)
            hosts[traffic_host(name)] = HostRecord(name=traffic_host(name), kind="traffic", switch=name, interface="eth0",
                                                   ip=str(sw.host_ip), mac=sw.host_mac, switch_mac=sw.mac)
        for name, server in layout.servers.items():
            hosts[name] = HostRecord(name=name, kind="server", switch=server.switch, interface="eth0", ip=str(server.ip),
                                     mac=server.mac, switch_mac=layout.switches[server.switch].mac)
        for name in hosts:
            net.addHost(name, ip=None)
        shells = {f"shell:{node.name}": st.process_record("shell", node.name, node.pid, ["mininet shell"])
                  for node in [*net.switches, *net.hosts]}

        def record_nodes(s: TestbedState) -> None:
            s.hosts.update(hosts)
            s.processes.update(shells)

        self._update(record_nodes)
        for node in net.hosts:
            _quiet(node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"), node.name)

        for name, sw in layout.switches.items():
            net.addLink(traffic_host(name), name, port1=0, port2=HOST_PORT, intfName1="eth0",
                        intfName2=switch_interface(sw.switch_id, HOST_PORT), addr1=sw.host_mac,
                        addr2=_root_mac(0xF0, sw.switch_id, HOST_PORT))
        server_links: dict[str, int] = {}
        for link in self.topology.spec.links:
            params = shaping(link, options.bandwidth_scale, self.state.delay_emulated)
            if link.a in layout.switches and link.b in layout.switches:
                a, b = layout.switches[link.a], layout.switches[link.b]
                pa, pb = layout.port(a.name, b.name), layout.port(b.name, a.name)
                net.addLink(a.name, b.name, port1=pa, port2=pb, intfName1=switch_interface(a.switch_id, pa),
                            intfName2=switch_interface(b.switch_id, pb), addr1=_root_mac(0xF0, a.switch_id, pa),
                            addr2=_root_mac(0xF0, b.switch_id, pb), **params)
            else:
                server, switch = (link.a, link.b) if link.a in layout.servers else (link.b, link.a)
                k = server_links[server] = server_links.get(server, -1) + 1
                sw, port = layout.switches[switch], layout.port(switch, server)
                net.addLink(server, switch, port1=k, port2=port, intfName1=f"eth{k}", intfName2=switch_interface(sw.switch_id, port),
                            addr1=layout.servers[server].mac, addr2=_root_mac(0xF0, sw.switch_id, port), **params)
        self._add_emac_ports(net)
        for name in roots:
            _root_only(name)
        for record in hosts.values():
            _configure_host(net[record.name], record)
        self._start_switches(net, options.ready_timeout_s, options.advertise_host or options.grpc_host)

    def _add_emac_ports(self, net: Any) -> None:
        from controller.testbed.mininet_api import Intf

        batch = []
        for sw in self.layout.switches.values():
            port_end, emac_end = switch_interface(sw.switch_id, EMAC_PORT), emac_interface(sw.switch_id)
            batch += [f"link add {port_end} address {_root_mac(0xF0, sw.switch_id, EMAC_PORT)} type veth peer name {emac_end} "
                      f"address {_root_mac(0xF1, sw.switch_id, EMAC_PORT)}", f"link set {port_end} up", f"link set {emac_end} up"]
        done = subprocess.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n", text=True, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise SremError(f"ip could not create the EMAC veths: {done.stderr.strip()}", where="testbed")
        for sw in self.layout.switches.values():
            Intf(switch_interface(sw.switch_id, EMAC_PORT), node=net[sw.name], port=EMAC_PORT)

    def _start_switches(self, net: Any, timeout_s: float, advertise: str) -> None:
        deadline = time.monotonic() + timeout_s
        for switch in net.switches:
            switch.start([])
            sw = self.layout.switches[switch.name]
            process = st.process_record("switch", switch.name, switch.process.pid, switch.argv(), switch.output)
            record = SwitchRecord(name=switch.name, switch_id=sw.switch_id, grpc=_grpc(advertise, sw.grpc_address),
                                  ports=switch.port_map(), emac_interface=emac_interface(sw.switch_id), argv=switch.argv(),
                                  output=str(switch.output), log=str(switch.log))
            self._children[f"switch:{switch.name}"] = switch.process

            def record_switch(s: TestbedState, process: ProcessRecord = process, record: SwitchRecord = record) -> None:
                s.processes[f"switch:{record.name}"] = process
                s.switches[record.name] = record

            self._update(record_switch)
        for switch in net.switches:
            switch.wait_ready(deadline)

    # Names and addresses

    @property
    def delay_emulated(self) -> bool:
        return self.state.delay_emulated

    def grpc_address(self, switch: NodeName) -> str:
        """Where a controller reaches the switch's P4Runtime server (as the state file records it)."""
        return self.state.switches[switch].grpc

    def device_id(self, switch: NodeName) -> int:
        """The P4Runtime device id of the switch: its switch id."""
        return self.layout.switches[switch].switch_id

    def traffic_host(self, switch: NodeName) -> str:
        return traffic_host(switch)

    def hosts(self, kind: str | None = None) -> list[str]:
        """Mininet host names: traffic hosts (`h-S`), rack servers, or both (kind None)."""
        return [h.name for h in self.state.hosts.values() if kind is None or h.kind == kind]

    def interface(self, host: str) -> str:
        """The host's interface to its switch, inside its namespace."""
        return self.host(host).interface

    def emac_interface(self, switch: NodeName) -> str:
        """The root-namespace end of the switch's EMAC port."""
        return emac_interface(self.layout.switches[switch].switch_id)

    def switch_interfaces(self, switch: NodeName) -> dict[int, str]:
        """Port -> the switch's interface on it (root namespace)."""
        return dict(self.state.switches[switch].ports)

    def switch_log(self, switch: NodeName) -> Path:
        return Path(self.state.switches[switch].log)

    def control_socket(self, host: str) -> Path:
        """The control socket of the host's process (rack server service or traffic agent)."""
        kind = "rack" if self.host(host).kind == "server" else "traffic"
        return self.run_dir / "ctl" / f"{kind}-{host}.sock"

    def propagation_delay_ms(self, a: NodeName, b: NodeName) -> float:
        """The topology's delay of the link a-b: what a hop adds where it is not emulated."""
        for link in self.topology.spec.links:
            if {link.a, link.b} == {a, b}:
                return link.delay_ms
        raise SremError(f"no link {a}-{b} in the topology", where=self.topology.source)

    def host(self, host: str) -> HostRecord:
        if host not in self.state.hosts:
            raise SremError(f"no host {host!r} in the testbed (traffic hosts h-SWITCH, rack servers by name)", where="testbed")
        return self.state.hosts[host]

    # Switches

    def switch_alive(self, switch: NodeName) -> bool:
        return st.alive(self.reload().processes[f"switch:{switch}"])

    def grpc_answers(self, switch: NodeName, timeout_s: float = 1.0) -> bool:
        return processes.answers(self.grpc_address(switch), timeout_s)

    def kill_switch(self, switch: NodeName, sig: int = signal.SIGKILL) -> None:
        """Signal the switch's process and wait until it is gone (a fault)."""
        self._signal(f"switch:{switch}", sig)

    def restart_switch(self, switch: NodeName, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Kill the switch's process if it lives and start it again: same ports, device id and gRPC address, no
        program (the controller's reconciler pushes it). Returns when it is ready; SwitchStartError if not."""
        from controller.testbed import bmv2

        key = f"switch:{switch}"
        self._signal(key, signal.SIGKILL)
        record = self.state.switches[switch]
        output, log_file = Path(record.output), Path(record.log)
        process = bmv2.launch(switch, record.argv, record.grpc, output)
        self._started(key, st.process_record("switch", switch, process.pid, record.argv, output), process)
        bmv2.wait_ready(switch, process, record.argv, record.grpc, output, log_file, time.monotonic() + timeout_s)

    # Processes

    def popen_in(self, host: str, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Run `argv` in the host's network namespace, stdout and stderr appended to `log_path`; recorded, so
        `down` stops it if nobody else does."""
        return self._popen_in(host, argv, log_path, "process", None)

    def _popen_in(self, host: str, argv: Sequence[str], log_path: Path, role: str, key: str | None) -> subprocess.Popen[bytes]:
        self.host(host)
        shell = self.reload().processes.get(f"shell:{host}")
        if shell is None or not st.alive(shell):
            raise SremError("its namespace is gone (its Mininet shell died with the process that built the testbed?)",
                            where=f"host {host}")
        # mnexec -a joins the shell's network and mount namespaces, then execs argv: the PID is argv's.
        process = processes.launch(argv, log_path, prefix=("mnexec", "-a", str(shell.pid)))
        self._started(key or f"process:{host}:{process.pid}", st.process_record(role, host, process.pid, list(argv), log_path, host),
                      process)
        return process

    def _started(self, key: str, record: ProcessRecord, process: subprocess.Popen[bytes]) -> None:
        self._children[key] = process

        def record_it(s: TestbedState) -> None:
            # popen_in's processes that finished are forgotten, so a long run's state file does not grow.
            for done in [k for k, r in s.processes.items() if r.role == "process" and not st.alive(r)]:
                del s.processes[done]
            s.processes[key] = record

        self._update(record_it)

    def _signal(self, key: str, sig: int, grace_s: float = 5.0) -> None:
        """Send `sig` to a recorded process and wait (bounded) until it is gone."""
        record = self.reload().processes[key]
        if st.alive(record):
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.kill(record.pid, sig)
        deadline = time.monotonic() + grace_s
        while st.alive(record) or self._poll(key):
            if time.monotonic() > deadline:
                raise SremError(f"still running {grace_s:g} s after signal {sig}", where=f"{record.role} {record.name} (pid {record.pid})")
            time.sleep(0.02)

    def _poll(self, key: str) -> bool:
        """Reap our child of that key if it ended; whether it still runs."""
        child = self._children.get(key)
        return child is not None and child.poll() is None

    def reap(self) -> None:
        """Collect the exit status of children that ended (a holder calls it now and then)."""
        for key, child in list(self._children.items()):
            if child.poll() is not None and key.startswith("process:"):
                del self._children[key]

    def process_alive(self, key: str) -> bool:
        """Whether a recorded process (e.g. `memserver:m1`, `emac`, `rack:m1`, `traffic:h-e1`) lives."""
        record = self.reload().processes.get(key)
        return record is not None and st.alive(record)

    def kill_process(self, key: str, sig: int = signal.SIGKILL) -> None:
        """Signal a recorded process and wait until it is gone (a fault)."""
        self._signal(key, sig)

    # External memory

    @property
    def memory_servers(self) -> dict[int, tuple[str, int]]:
        """Memory server id (the rack server's id, as the switches' RDMA tables name it) -> its address."""
        return {self.layout.servers[name].server_id: parse_address(address) for name, address in self.state.memory_servers.items()}

    @property
    def controller_tls(self) -> TlsFiles | None:
        """The controller's side of P4Runtime over TLS (CA, client certificate and key); None: plaintext on loopback."""
        return tls.Deployment(Path(self.state.tls_dir)).controller() if self.state.tls_dir is not None else None

    @property
    def memory_key_file(self) -> Path:
        """The control key the memory servers and the controller share (mode 0600, made at start)."""
        return self.run_dir / "memory.key"

    @property
    def memory_key(self) -> bytes | None:
        """The memory servers' control key; None for a testbed whose servers were started without one."""
        if not self.memory_key_file.exists():
            return None
        try:
            return load_key(self.memory_key_file)
        except KeyFileError as exc:
            raise SremError(str(exc), where="the testbed's memory key") from None

    @property
    def emac_metrics(self) -> str | None:
        """HOST:PORT of the EMAC's Prometheus /metrics (lookups, drops by reason)."""
        return self.state.emac_metrics

    def start_external_memory(self, capacity_mb: float = 1024.0, latency_ns: float = 0.0,
                              timeout_s: float = READY_TIMEOUT_S) -> dict[int, tuple[str, int]]:
        """One memory server per rack server (root namespace, loopback, a port of its own) and one EMAC on every
        switch's EMAC end; returns `memory_servers` (what ExternalMemory needs)."""
        logs = self.run_dir / "logs"
        # Loopback is reachable by every local process: only the holder of the run's key may ALLOC and FREE.
        write_key_files([(self.memory_key_file, None)], keep=True)
        started = {}
        for name in self.layout.servers:
            argv = [sys.executable, "-m", "rdma_emulator", "memserver", "--listen", "127.0.0.1:0", "--capacity-mb", f"{capacity_mb:g}",
                    "--latency-ns", f"{latency_ns:g}", "--key-file", str(self.memory_key_file), "--log-level", "warning"]
            started[name] = (argv, self._launch_root(f"memserver:{name}", "memserver", name, argv, logs / f"memserver-{name}.log"))
        deadline = time.monotonic() + timeout_s
        addresses = {}
        for name, (argv, process) in started.items():
            ready = processes.wait_json_line(f"memory server of {name}", process, argv, logs / f"memserver-{name}.log", "memserver", deadline)
            addresses[name] = str(ready["memserver"])
        # Recorded with the port it bound, so a restart (restart_memory_server) comes back where the EMAC looks.
        fixed = {name: [*argv[:argv.index("--listen") + 1], addresses[name], *argv[argv.index("--listen") + 2:]]
                 for name, (argv, _) in started.items()}

        def record_servers(s: TestbedState) -> None:
            s.memory_servers.update(addresses)
            for name, argv in fixed.items():
                s.processes[f"memserver:{name}"].argv = argv

        self._update(record_servers)
        argv = [sys.executable, "-m", "rdma_emulator", "emac", "--log-level", "warning", "--metrics", "127.0.0.1:0"]
        for name, address in addresses.items():
            argv += ["--memory-server", f"{self.layout.servers[name].server_id}={address}"]
        for sw in self.layout.switches.values():
            argv += ["--interface", emac_interface(sw.switch_id)]
        process = self._launch_root("emac", "emac", "emac", argv, logs / "emac.log")
        ready = processes.wait_json_line("EMAC", process, argv, logs / "emac.log", "emac", time.monotonic() + timeout_s)
        self._update(lambda s: setattr(s, "emac_metrics", str(ready.get("metrics"))))
        return self.memory_servers

    def _launch_root(self, key: str, role: str, name: str, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        process = processes.launch(argv, log_path)
        self._started(key, st.process_record(role, name, process.pid, argv, log_path), process)
        return process

    def restart_memory_server(self, server: NodeName, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Kill the memory server if it lives and start it again on its address, empty (a memory server's
        regions do not survive it; the controller programs them again)."""
        self._restart_root(f"memserver:{server}", f"memory server of {server}", "memserver", timeout_s)

    def restart_emac(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Kill the EMAC if it lives and start it again with the same command: it holds nothing to restore (every
        request names its table); its /metrics may move to another port, which the state file then records."""
        ready = self._restart_root("emac", "EMAC", "emac", timeout_s)
        self._update(lambda s: setattr(s, "emac_metrics", str(ready.get("metrics"))))

    def _restart_root(self, key: str, what: str, ready_key: str, timeout_s: float) -> dict[str, Any]:
        """Restart a recorded root-namespace process with its recorded command; its ready line."""
        self._signal(key, signal.SIGKILL)
        record = self.state.processes[key]
        log_path = Path(record.log or self.run_dir / "logs" / f"{key.replace(':', '-')}.log")
        process = self._launch_root(key, record.role, record.name, record.argv, log_path)
        return processes.wait_json_line(what, process, record.argv, log_path, ready_key, time.monotonic() + timeout_s)

    def stop_external_memory(self) -> None:
        """Stop the EMAC, then every memory server (SIGTERM, then SIGKILL); start_external_memory starts them afresh."""
        self._stop_roles(("emac",))
        self._stop_roles(("memserver",))

        def forget(s: TestbedState) -> None:
            s.memory_servers.clear()
            s.emac_metrics = None

        self._update(forget)

    def _stop_roles(self, roles: tuple[str, ...]) -> None:
        """Stop the recorded processes of these roles and drop their records (stopped on purpose, not failed)."""
        records = {key: r for key, r in self.reload().processes.items() if r.role in roles}
        st.terminate(records.values())
        self.reap()

        def forget(s: TestbedState) -> None:
            for key in records:
                s.processes.pop(key, None)
                self._children.pop(key, None)

        self._update(forget)

    # Host processes (hosts/)

    def start_host_processes(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """The VNF service on every rack server and the traffic agent on every traffic host, each in its host's
        namespace with a control socket under RUN/ctl; returns when every socket exists."""
        logs = self.run_dir / "logs"
        waiting = []
        for record in self.state.hosts.values():
            sock = self.control_socket(record.name)
            if record.kind == "server":
                key, base = f"rack:{record.name}", logs / f"rack-{record.name}"
                argv = rack_server_command(record.name, record.interface, record.switch_mac, sock, base.with_suffix(".log"))
            else:
                key, base = f"traffic:{record.name}", logs / f"traffic-{record.name}"
                argv = [sys.executable, "-m", "hosts.traffic", "--name", record.name, "--interface", record.interface,
                        "--control", str(sock), "--log", str(base.with_suffix(".log")), "--gateway-mac", record.switch_mac]
            process = self._popen_in(record.name, argv, base.with_suffix(".out"), key.partition(":")[0], key)
            waiting.append((key, argv, base.with_suffix(".out"), sock, process))
        deadline = time.monotonic() + timeout_s
        for key, argv, output, sock, process in waiting:
            processes.wait_path(key, process, argv, output, sock, deadline)

    def stop_host_processes(self) -> None:
        """Stop the rack servers' services and the traffic agents (SIGTERM, then SIGKILL)."""
        self._stop_roles(("rack", "traffic"))

    # Status and teardown

    def status(self) -> TestbedStatus:
        """Each switch (process alive, gRPC answering) and every other recorded process (alive)."""
        return inventory.status(self.reload())

    def stop(self) -> DownReport:
        """Stop everything recorded (whoever started it) and delete the testbed's interfaces; idempotent."""
        report = inventory.down(self.state.path)
        for child in self._children.values():
            child.poll()
        if self._net is not None:
            # The shells were killed with the rest; this closes Mininet's ends of their terminals and reaps them.
            for node in [*self._net.hosts, *self._net.switches]:
                node.terminate()
            self._net = None
        return report or DownReport(str(self.run_dir))


def _grpc(host: str, layout_address: str) -> str:
    """The layout's P4Runtime address (loopback, port 50000 + switch id) on another host."""
    return f"{host}:{layout_address.rpartition(':')[2]}"


def _preflight(topology: Topology, run_dir: Path, grpc_host: str) -> None:
    """Refuse before creating anything: a missing tool, a testbed already up, leftovers, busy ports."""
    if lacking := missing():
        raise SremError(f"the testbed needs {'; '.join(lacking)}", where="testbed")
    if (path := st.pointed()) is not None:
        raise inventory.already_up(path)
    if (run_dir / st.STATE_FILE).exists():
        raise SremError("holds a testbed's state already; choose another run directory", where=run_dir)
    if left := st.present_interfaces(PREFIX):
        raise SremError(f"interfaces {' '.join(left[:8])}{' ...' if len(left) > 8 else ''} exist but no testbed records them "
                        f"(ip link del NAME removes one)", where="testbed")
    try:
        layout = Layout(topology.spec)
        for sw in layout.switches.values():
            layout.port_roles(sw.name)  # link ports that would collide with the host or EMAC port
    except ValueError as exc:
        raise SremError(f"cannot number this network for the testbed: {exc}", where=topology.source) from None
    ports = [_grpc(grpc_host, sw.grpc_address) for sw in layout.switches.values()]
    if busy := [address for address in ports if processes.answers(address, 0.2)]:
        raise SremError(f"something already listens on {', '.join(busy)}, the switches' P4Runtime ports", where="testbed")


def _root_only(iface: str) -> None:
    """IPv6 off, IPv4 forwarding off, ARP replies off on a root-namespace end."""
    for path, value in ((f"ipv6/conf/{iface}/disable_ipv6", "1"), (f"ipv4/conf/{iface}/forwarding", "0"),
                        (f"ipv4/conf/{iface}/arp_ignore", "8")):
        Path("/proc/sys/net", path).write_text(value)


def _configure_host(node: Any, record: HostRecord) -> None:
    iface = record.interface
    _quiet(node.cmd(f"ip link set lo up && ip addr add {record.ip}/32 dev {iface} && ip link set {iface} up && "
                    f"ip neigh replace {GATEWAY} lladdr {record.switch_mac} dev {iface} nud permanent && "
                    f"ip route replace {NETWORK} via {GATEWAY} dev {iface} onlink"), record.name)


def _quiet(output: str, where: str) -> None:
    """A configuration command run in a Mininet shell prints nothing unless it failed."""
    if output.strip():
        raise SremError(f"configuration failed: {output.strip()}", where=f"host {where}")

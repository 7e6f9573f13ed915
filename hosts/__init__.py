"""What runs on the testbed's hosts: the rack servers' VNF service and the traffic hosts' senders,
receivers and probes. Like the RDMA emulator it stands in for hardware: it imports only srem_formats and the emulator's
socket-side helpers (rdma_emulator.net)."""

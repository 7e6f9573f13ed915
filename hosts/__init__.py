"""What runs on the testbed's hosts: the rack servers' VNF service and the traffic hosts' senders,
receivers and probes. Like the RDMA emulator it stands in for hardware and imports only srem_formats."""

"""The live testbed: the topology file's network in Mininet, one BMv2 switch per topology switch, the
rack servers and traffic hosts as Mininet hosts, and the external-memory processes; brought up,
recorded so that it can always be torn down (even after a crash), and driven by the live loop."""

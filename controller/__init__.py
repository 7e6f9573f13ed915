"""SR-EM controller application: the system model, the reconfiguration policies and the `srem` CLI."""

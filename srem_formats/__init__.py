"""The ground floor: formats that the P4 program, the controller and the emulated hardware (EMAC,
memory servers, server agents) share - flows and rules, the bytes srem.p4 puts on the wire, and
the external-memory table layout. It imports nothing of the project's; everything else may import it."""

"""External memory without RDMA hardware: memory servers that serve one-sided READ/WRITE/CAS over
UDP with an injected per-access latency, the client side, and the EMAC that answers switches'
table misses from them."""

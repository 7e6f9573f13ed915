# BMv2 from a machine's local install, for machines that cannot pull p4lang/behavioral-model
# (scripts/prepare-images.sh builds it with a staged context: bin/simple_switch_grpc and lib/ the
# /usr/local/lib libraries it links). Not used on an ordinary Docker host.
FROM srem-base:bookworm
# The Debian libraries simple_switch_grpc links (ldd), as packaged in bookworm.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libgrpc++1.51 libprotobuf32 libboost-filesystem1.74.0 libboost-program-options1.74.0 libboost-thread1.74.0 \
       libnanomsg5 libpcap0.8 libgmp10 libabsl20220623 libc-ares2 libre2-9 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY lib/ /usr/local/lib/
COPY bin/simple_switch_grpc /usr/local/bin/
RUN ldconfig && simple_switch_grpc --version

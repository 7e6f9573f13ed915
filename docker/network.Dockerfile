# The network: Mininet and one BMv2 per switch of the topology file, the traffic hosts' agents and the rack
# servers' VNF service in their namespaces, held by `srem testbed serve` (no controller, no torch: the controller,
# the EMAC and the memory servers are containers of their own, docker-compose.yml).
#
# BMv2 comes from BMV2_IMAGE, any image with simple_switch_grpc on PATH: the official p4lang/behavioral-model
# (Ubuntu-based, a newer glibc than bookworm's) for users; srem-bmv2:local (scripts/prepare-images.sh) on machines
# that cannot pull. p4lang publishes that image only as `latest` (rebuilt every 4 hours from main) and `stable`
# (its stable branch), no version tags: `stable` is the default, and pinning it by digest
# (SREM_BMV2_IMAGE=p4lang/behavioral-model@sha256:...) makes a build repeatable. docker/bmv2-bundle.sh copies the binary with every library it loads, glibc and the loader
# included, and points the binary at them, so it runs on the Debian base whatever distribution built it.
# Mininet needs root and namespaces, veths, bridges and htb: docker-compose.yml gives the container the
# capabilities for that (not `privileged`).
ARG BMV2_IMAGE=p4lang/behavioral-model:stable
ARG BASE_IMAGE=debian:12.11-slim

FROM ${BMV2_IMAGE} AS bmv2
COPY docker/bmv2-bundle.sh /tmp/bmv2-bundle.sh
RUN sh /tmp/bmv2-bundle.sh /opt/bmv2

# patchelf stays in this stage: installing and purging it in the final one would leave apt's caches behind.
FROM ${BASE_IMAGE} AS bmv2-patched
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends patchelf
COPY docker/bmv2-bundle.sh /tmp/bmv2-bundle.sh
COPY --from=bmv2 /opt/bmv2 /opt/bmv2
RUN sh /tmp/bmv2-bundle.sh --patch /opt/bmv2

FROM ${BASE_IMAGE}
# A CA bundle to trust for the package downloads, for networks that re-sign TLS (prepare-images.sh passes the
# machine's); used only while installing and not kept in the image.
ARG CA_BUNDLE_URL=
COPY --from=bmv2-patched /opt/bmv2 /opt/bmv2
WORKDIR /srem
ENV PATH=/srem/.venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
# The Python packages the network's processes import (pins from requirements.txt); `srem testbed serve` checks the rest.
RUN ln -s /opt/bmv2/bin/simple_switch_grpc /usr/local/bin/simple_switch_grpc \
    && simple_switch_grpc --version >/dev/null \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv mininet ethtool iproute2 util-linux procps \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && python3 -m venv .venv \
    && if [ -n "$CA_BUNDLE_URL" ]; then \
         python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/ca.crt")' "$CA_BUNDLE_URL" \
         && export PIP_CERT=/tmp/ca.crt; fi \
    && pip install -q -c /tmp/requirements.txt numpy pydantic PyYAML tqdm scapy pexpect setuptools prometheus_client uvloop \
       cryptography \
    && rm -f /tmp/ca.crt /tmp/requirements.txt \
    && find .venv -name __pycache__ -prune -exec rm -rf {} +
COPY pyproject.toml README.md ./
COPY srem_formats/ srem_formats/
COPY rdma_emulator/ rdma_emulator/
COPY hosts/ hosts/
COPY topologies/ topologies/
COPY controller/ controller/
# As scripts/setup.sh does: the venv sees Debian's mininet package and nothing else of the system Python.
RUN pip install -q --no-deps --no-build-isolation -e . \
    && mkdir -p .venv/srem-system-packages \
    && ln -s /usr/lib/python3/dist-packages/mininet .venv/srem-system-packages/mininet \
    && purelib="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && echo /srem/.venv/srem-system-packages > "$purelib/srem-mininet.pth" \
    && pip uninstall -q -y pip \
    && python -c 'import controller.cli, controller.testbed.holder, controller.testbed.bmv2, hosts.traffic, hosts.rack_server' \
    && srem testbed serve --help >/dev/null
COPY docker/entrypoint.sh /usr/local/bin/srem-entrypoint
ENTRYPOINT ["srem-entrypoint"]
CMD ["testbed", "serve", "--topology", "paper", "--run-dir", "/srem/results/compose/net", "--replace"]

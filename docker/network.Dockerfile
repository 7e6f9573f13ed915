# The whole live testbed in one container: Mininet, BMv2 and the project (the controller's live loop, the
# rack servers, the memory servers, the EMAC and the traffic agents as processes), run with `srem testbed run`.
# Mininet needs root and namespaces, veths, bridges and htb: docker-compose.yml gives the container the
# capabilities for that (not `privileged`).
# BMV2_IMAGE: an image with simple_switch_grpc on PATH on Debian bookworm; srem-bmv2:local is made by
# scripts/prepare-images.sh from a local BMv2 install on machines that cannot pull.
ARG BMV2_IMAGE=srem-bmv2:local
FROM ${BMV2_IMAGE}
# The CPU build of torch (the index's Linux wheels pull the CUDA libraries, several GB).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# A CA bundle to trust for the package downloads, for networks that re-sign TLS (prepare-images.sh passes the
# machine's); used only while installing and not kept in the image.
ARG CA_BUNDLE_URL=

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv mininet ethtool iproute2 util-linux procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srem
ENV PATH=/srem/.venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies first, so that a change to the sources does not reinstall them.
COPY requirements.txt ./
RUN python3 -m venv .venv \
    && if [ -n "$CA_BUNDLE_URL" ]; then \
         python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/ca.crt")' "$CA_BUNDLE_URL" \
         && export PIP_CERT=/tmp/ca.crt; fi \
    && pip install -q --no-deps --index-url "$TORCH_INDEX" torch==2.13.0 \
    && pip install -q -r requirements.txt \
    && rm -f /tmp/ca.crt
COPY pyproject.toml README.md ./
COPY srem_formats/ srem_formats/
COPY rdma_emulator/ rdma_emulator/
COPY hosts/ hosts/
COPY topologies/ topologies/
COPY p4src/ p4src/
COPY controller/ controller/
# As scripts/setup.sh does: the venv sees Debian's mininet package and nothing else of the system Python.
RUN pip install -q --no-deps --no-build-isolation -e . \
    && mkdir -p .venv/srem-system-packages \
    && ln -s /usr/lib/python3/dist-packages/mininet .venv/srem-system-packages/mininet \
    && purelib="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && echo /srem/.venv/srem-system-packages > "$purelib/srem-mininet.pth" \
    && python -c 'import mininet.net, controller.cli' \
    && srem --help >/dev/null
COPY docker/entrypoint.sh /usr/local/bin/srem-entrypoint
ENTRYPOINT ["srem-entrypoint"]
CMD ["testbed", "run", "--scenario", "small", "--steps", "2", "--step-seconds", "5", "--policy", "static"]

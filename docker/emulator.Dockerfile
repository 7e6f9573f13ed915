# The emulated external memory: one image for the memory servers (a container per rack server) and the EMAC.
# Python, two pinned packages and the emulator (rdma_emulator/, srem_formats/): nothing of the controller.
# Both run as an unprivileged user; the EMAC reads and writes raw frames on the switches' EMAC ports, so a copy
# of the interpreter that only the EMAC runs (python3-netraw) has the file capability CAP_NET_RAW.
ARG BASE_IMAGE=debian:12.11-slim
FROM ${BASE_IMAGE}
# A CA bundle to trust for the package downloads, for networks that re-sign TLS (prepare-images.sh passes the
# machine's); used only while installing and not kept in the image.
ARG CA_BUNDLE_URL=

WORKDIR /srem
ENV PATH=/srem/.venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv libcap2-bin \
    && python3 -m venv .venv \
    && if [ -n "$CA_BUNDLE_URL" ]; then \
         python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/ca.crt")' "$CA_BUNDLE_URL" \
         && export PIP_CERT=/tmp/ca.crt; fi \
    && pip install -q -c /tmp/requirements.txt prometheus_client uvloop \
    && pip uninstall -q -y pip setuptools \
    && cp "$(readlink -f .venv/bin/python3)" .venv/bin/python3-netraw \
    && setcap cap_net_raw+ep .venv/bin/python3-netraw \
    && apt-get purge -y --auto-remove libcap2-bin \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/ca.crt /tmp/requirements.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin srem
COPY srem_formats/ srem_formats/
COPY rdma_emulator/ rdma_emulator/
RUN python3 -m rdma_emulator --help >/dev/null
USER 10001
ENTRYPOINT ["python3", "-m", "rdma_emulator"]
CMD ["memserver", "--listen", "0.0.0.0:7000"]

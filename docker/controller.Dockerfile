# The controller: the project with its pinned requirements and the CPU build of torch, running the live loop
# (`srem testbed run --attach`) against a network run elsewhere, and `srem testbed probe` (the probe service).
# No Mininet, no BMv2: it reaches the switches over P4Runtime, the memory servers over the emulated RDMA, and the
# hosts' agents through their control sockets in the shared run directory.
ARG BASE_IMAGE=debian:12.11-slim
FROM ${BASE_IMAGE}
# The CPU build of torch (the index's Linux wheels pull the CUDA libraries, several GB).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# A CA bundle to trust for the package downloads, for networks that re-sign TLS; used only while installing.
ARG CA_BUNDLE_URL=

WORKDIR /srem
ENV PATH=/srem/.venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SREM_CACHE=/srem/cache MPLCONFIGDIR=/tmp/matplotlib
COPY requirements.txt ./
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && python3 -m venv .venv \
    && if [ -n "$CA_BUNDLE_URL" ]; then \
         python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/ca.crt")' "$CA_BUNDLE_URL" \
         && export PIP_CERT=/tmp/ca.crt; fi \
    && pip install -q --no-deps --index-url "$TORCH_INDEX" torch==2.13.0 \
    && pip install -q -r requirements.txt \
    && rm -f /tmp/ca.crt \
    && find .venv -name __pycache__ -prune -exec rm -rf {} +
COPY pyproject.toml README.md ./
COPY srem_formats/ srem_formats/
COPY rdma_emulator/ rdma_emulator/
COPY hosts/ hosts/
COPY topologies/ topologies/
COPY p4src/ p4src/
COPY controller/ controller/
# The shipped scenarios' datasets, generated once here rather than at every start.
RUN pip install -q --no-deps --no-build-isolation -e . \
    && pip uninstall -q -y pip \
    && python -c 'from controller.model.scenario import load_scenario; from controller.model.dataset import default_dataset; [default_dataset(load_scenario(n), progress=False) for n in ("small", "paper")]' \
    && srem --help >/dev/null
ENTRYPOINT ["srem"]
CMD ["testbed", "probe", "--run-dir", "/srem/results/compose/net"]

#!/usr/bin/env bash
# For machines whose Docker engine cannot pull from a registry (the development machines): makes locally the
# images the project's Dockerfiles start from, so that `docker-compose build` needs no registry.
# This is NOT what users run: on an ordinary Docker host the Dockerfiles' defaults are used as they are.
#
#   srem-base:bookworm   Debian 12 (minbase) by debootstrap from the mirror apt uses here, imported with
#                        `docker import`, with apt's clean-up hook as in the official image (what a pull of
#                        debian:12.11-slim would give); it stands in for SREM_BASE_IMAGE
#   srem-bmv2:local      srem-base + the BMv2 installed on this machine: /usr/local/bin/simple_switch_grpc and the
#                        /usr/local/lib libraries it links (ldd), the Debian libraries it needs from apt; it stands
#                        in for p4lang/behavioral-model (SREM_BMV2_IMAGE)
#
# Then it builds the project's images (srem-network, srem-emulator, srem-controller: docker-compose.yml) with
# the build arguments this machine needs (the torch CPU wheel comes from this machine's wheel directory, served
# to the build on loopback, since download.pytorch.org does not answer here). Run as root with dockerd running;
# safe to run again (a base image present is kept, --force remakes them; the project's images are rebuilt from
# Docker's cache, which is quick when nothing changed).
#   scripts/prepare-images.sh [--force] [--base-only]
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
base_only=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --base-only) base_only=1 ;;
        *) echo "prepare-images: unknown argument '$arg' (--force, --base-only)" >&2; exit 2 ;;
    esac
done

docker info >/dev/null 2>&1 || { echo "prepare-images: no Docker engine answers ('docker info' fails); start dockerd" >&2; exit 1; }

have_image() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror apt uses on this machine (deb822 sources or a one-line sources.list).
debian_mirror() {
    local uri
    uri=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
          | grep -E '/debian/?( |$)' | head -1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
    [ -n "$uri" ] || { echo "prepare-images: no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }
    echo "$uri"
}

if ! have_image srem-base:bookworm; then
    command -v debootstrap >/dev/null || { echo "prepare-images: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    root=$(mktemp -d /tmp/srem-base.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    mirror=$(debian_mirror)
    echo "prepare-images: debootstrap bookworm from $mirror" >&2
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/tmp/srem-debootstrap.log 2>&1 \
        || { echo "prepare-images: debootstrap failed, see /tmp/srem-debootstrap.log" >&2; exit 1; }
    # apt's caches are not part of an image; debian:*-slim leaves them out too.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    # As the official image's /etc/apt/apt.conf.d/docker-clean: apt keeps no package or cache files in a layer.
    cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - srem-base:bookworm >/dev/null
    rm -rf "$root"
    trap - EXIT
fi
echo "prepare-images: srem-base:bookworm ready" >&2
[ "$base_only" = 1 ] && exit 0

if ! have_image srem-bmv2:local; then
    bmv2=$(command -v simple_switch_grpc) || { echo "prepare-images: simple_switch_grpc is not installed here" >&2; exit 1; }
    context=$(mktemp -d /tmp/srem-bmv2.XXXXXX)
    trap 'rm -rf "$context"' EXIT
    mkdir -p "$context/bin" "$context/lib"
    cp "$bmv2" "$context/bin/"
    # Only the libraries built with BMv2 (/usr/local/lib); the Debian ones come from apt in the image.
    ldd "$bmv2" | awk '$3 ~ /^\/usr\/local\/lib\// {print $3}' | while read -r lib; do cp -L "$lib" "$context/lib/"; done
    cp docker/bmv2-local.Dockerfile "$context/Dockerfile"
    docker build -q -t srem-bmv2:local "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
fi
echo "prepare-images: srem-bmv2:local ready" >&2

# The torch CPU wheel from this machine's wheel directory, as a one-package index on loopback for the build.
wheels=${SREM_WHEELS:-/opt/wheels}
torch_wheel=$(ls "$wheels"/torch-*+cpu-*.whl 2>/dev/null | head -1)
[ -n "$torch_wheel" ] || { echo "prepare-images: no torch CPU wheel in $wheels (SREM_WHEELS=DIR)" >&2; exit 1; }
index=$(mktemp -d /tmp/srem-index.XXXXXX)
mkdir -p "$index/torch"
ln -s "$torch_wheel" "$index/torch/"
# This machine's network re-signs TLS: the build trusts the machine's CA bundle while installing.
cp /etc/ssl/certs/ca-certificates.crt "$index/ca.crt"
port=${SREM_INDEX_PORT:-18099}
python3 -m http.server --bind 127.0.0.1 --directory "$index" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$index"' EXIT
SREM_BASE_IMAGE=srem-base:bookworm SREM_BMV2_IMAGE=srem-bmv2:local SREM_TORCH_INDEX="http://127.0.0.1:$port/" \
    SREM_CA_BUNDLE_URL="http://127.0.0.1:$port/ca.crt" SREM_BUILD_NETWORK=host \
    docker-compose build memory-m1 network controller
echo "prepare-images: srem-emulator, srem-network and srem-controller built" >&2

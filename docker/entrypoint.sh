#!/bin/sh
# Entry point of the network image: Mininet writes sysctls in every host's namespace (IPv6 off), which Docker's
# read-only /proc/sys forbids. `security_opt: systempaths=unconfined` lifts that with the docker CLI and compose
# v2 but compose v1 cannot pass it, so the container (which has CAP_SYS_ADMIN for Mininet anyway) remounts its
# own /proc/sys read-write; nothing outside the container's mount namespace changes.
set -eu
if ! [ -w /proc/sys/net/ipv6/conf/all/disable_ipv6 ]; then
    mount -o remount,rw /proc/sys 2>/dev/null \
        || { echo "srem container: /proc/sys is read-only and cannot be remounted:" \
                  "give the container CAP_SYS_ADMIN (docker-compose.yml)" >&2; exit 1; }
fi
exec srem "$@"

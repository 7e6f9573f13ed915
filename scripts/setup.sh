#!/usr/bin/env bash
# Installs what srem needs on a Debian 12 machine, as root: Debian packages (Mininet and ethtool for
# the live testbed among them), then a virtual environment in .venv with the pinned Python
# dependencies of requirements.txt and srem itself.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(python3 python3-venv python3-pip mininet ethtool)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    /usr/bin/python3 -m venv .venv
fi

stamp=.venv/.srem-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing pinned Python dependencies" >&2
    # This machine's pip configuration may name local package mirrors that lack a package; pip
    # warns and goes on to PyPI, so those warnings are noise here.
    .venv/bin/pip install -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
    .venv/bin/pip install -q --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)
    echo "$want" > "$stamp"
fi

# Mininet comes from Debian's package, into the system Python (the same 3.11 as .venv). The venv sees
# only the mininet package: a .pth names a directory that holds nothing but a link to it, so the rest
# of /usr/lib/python3/dist-packages (other versions of the pinned dependencies) stays out.
command -v mnexec >/dev/null || { echo "setup: mnexec is missing although mininet is installed" >&2; exit 1; }
system_mininet=/usr/lib/python3/dist-packages/mininet
[ -d "$system_mininet" ] || { echo "setup: $system_mininet is missing (dpkg -L mininet)" >&2; exit 1; }
mininet_dir=.venv/srem-system-packages
mkdir -p "$mininet_dir"
ln -sfn "$system_mininet" "$mininet_dir/mininet"
site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$(pwd)/$mininet_dir" > "$site_packages/srem-mininet.pth"
.venv/bin/python -c 'import mininet.net' || { echo "setup: .venv cannot import mininet" >&2; exit 1; }

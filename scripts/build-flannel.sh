#!/usr/bin/env bash
# Builds Flannel's CNI plugin for bench:cni from the Go module proxy into the
# machine-level cache (/var/cache/twill), once. Prints the binary's path.
# github.com/flannel-io/cni-plugin, where Flannel's plugin lives today, is not
# served by the proxy (403, "not available"); its code came from
# containernetworking/plugins' plugins/meta/flannel, whose last release with it
# (v0.9.1) is built instead: the same plugin (reads subnet.env, delegates to
# bridge + host-local), before the move.
set -euo pipefail
version=v0.9.1
out="${TWILL_CACHE_DIR:-/var/cache/twill}/flannel-cni-$version/bin"
if [ -x "$out/flannel" ]; then
  echo "$out/flannel"
  exit 0
fi
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "[bench] Go is needed to build Flannel's plugin (expected at /usr/local/go/bin/go)" >&2; exit 1; }
mkdir -p "$out"
echo "[bench] building flannel CNI plugin $version (first run on this machine only, ~10 s)" >&2
(cd / && CGO_ENABLED=0 GOBIN="$out/gobin" go install -trimpath -ldflags "-s -w" "github.com/containernetworking/plugins/plugins/meta/flannel@$version")
mv -f "$out/gobin/flannel" "$out/flannel"
rmdir "$out/gobin"
echo "$out/flannel"

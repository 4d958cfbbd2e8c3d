#!/usr/bin/env bash
# Builds the lab's Kubernetes from its Go modules (lab/k8s/go.mod pins the
# versions) into a machine-level cache that later runs and fresh clones on this
# machine reuse. Prints the directory holding the binaries on stdout.
#   always:                kube-apiserver, kube-controller-manager, etcd
#   TWILL_BUILD_KUBELET=1: what a real cluster's nodes and add-ons run: kubelet,
#                          kube-scheduler, kube-proxy, kubectl, CoreDNS, agnhost
#   TWILL_BUILD_E2E=1:     e2e.test, upstream's network e2e specs (lab/k8s/e2e)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
k8s_version=v1.36.3
etcd_version=v3.6.8
coredns_version=v1.15.0
mod="$root/lab/k8s"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/cmd/etcd/main.go" "$mod/e2e/e2e_test.go" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
out="${TWILL_CACHE_DIR:-/var/cache/twill}/k8s-$k8s_version-$key/bin"
say() { printf '[lab] %s\n' "$*" >&2; }

wanted=(kube-apiserver kube-controller-manager etcd)
[ "${TWILL_BUILD_KUBELET:-0}" = 1 ] && wanted+=(kubelet kube-scheduler kube-proxy kubectl coredns agnhost)
[ "${TWILL_BUILD_E2E:-0}" = 1 ] && wanted+=(e2e.test)
missing=()
for b in "${wanted[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { say "Go is needed to build the control plane (expected at /usr/local/go/bin/go)"; exit 1; }
mkdir -p "$out"
commit=$(printf '%s' "$k8s_version" | sha1sum | cut -c1-40)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Stamp the release so /version answers v1.36.3, not v0.0.0-master.
ver="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=36 -X k8s.io/component-base/version.gitCommit=$commit \
-X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=$date \
-X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 \
-X k8s.io/client-go/pkg/version.gitMinor=36 -X k8s.io/client-go/pkg/version.gitCommit=$commit \
-X k8s.io/client-go/pkg/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.buildDate=$date"
cd "$mod"
for b in "${missing[@]}"; do
  case "$b" in
    etcd) pkg=./cmd/etcd; v=$etcd_version; eta="~30 s" ;;
    agnhost) pkg=k8s.io/kubernetes/test/images/agnhost; v=$k8s_version; eta="~2 min" ;;
    e2e.test) pkg=./e2e; v=$k8s_version; eta="~4 min" ;;
    coredns) pkg=github.com/coredns/coredns@$coredns_version; v=$coredns_version; eta="~2 min" ;;
    *) pkg=k8s.io/kubernetes/cmd/$b; v=$k8s_version; eta="~4 min" ;;
  esac
  say "building $b $v (first run on this machine only, $eta on 2 cores)"
  start=$(date +%s)
  case "$b" in
    e2e.test) CGO_ENABLED=0 go test -c -mod=mod -trimpath -ldflags "-s -w $ver" -o "$out/$b.tmp" "$pkg" ;;
    # CoreDNS is its own module: built at its release, outside lab/k8s.
    coredns) (cd / && CGO_ENABLED=0 GOBIN="$out/gobin" go install -trimpath -ldflags "-s -w" "$pkg") && mv -f "$out/gobin/coredns" "$out/$b.tmp" && rmdir "$out/gobin" ;;
    *) CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w $ver" -o "$out/$b.tmp" "$pkg" ;;
  esac
  mv -f "$out/$b.tmp" "$out/$b"
  say "built $b in $(( $(date +%s) - start )) s"
done
echo "$out"

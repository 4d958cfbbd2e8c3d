#!/usr/bin/env bash
# One entry point for every npm script: set the machine up, then run the step
# on the project's pinned Node 24 (node_modules/.bin/node), never the system's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/node_modules/.bin:$PATH"

step=${1:?usage: twill.sh build|test|typecheck|lab|demo|e2e|soak|bench NAME}
shift
case "$step" in
  build) bash scripts/build.sh "$@" ;;
  typecheck) tsc -p tsconfig.json ;;
  test)
    bash scripts/build.sh
    # The lab's Kubernetes (the cluster's binaries for test/kubelet, the e2e
    # binary for test/e2e), before vitest: a first build takes minutes and must
    # not run into a test-hook timeout.
    TWILL_BUILD_KUBELET=1 TWILL_BUILD_E2E=1 bash scripts/build-controlplane.sh >/dev/null
    tsc -p tsconfig.json
    report=$(mktemp)
    rc=0
    vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || rc=$?
    [ -s "$report" ] && node scripts/test-summary.ts "$report"
    rm -f "$report"
    exit $rc
    ;;
  lab)
    bash scripts/build.sh
    # The lab is a real cluster unless --fast: kubelet, kube-scheduler, kube-proxy, kubectl and CoreDNS too,
    # built from the same modules.
    case " $* " in *" --fast "*) ;; *) export TWILL_BUILD_KUBELET=1 ;; esac
    [ "${1:-}" = down ] || bash scripts/build-controlplane.sh >/dev/null
    exec node lab/main.ts "$@"
    ;;
  demo) bash scripts/build.sh && exec node scripts/demo.ts "$@" ;;
  e2e)
    bash scripts/build.sh
    # kubelet, kube-scheduler, kube-proxy, CoreDNS, agnhost and e2e.test: the real-cluster lab and upstream's specs.
    TWILL_BUILD_KUBELET=1 TWILL_BUILD_E2E=1 bash scripts/build-controlplane.sh >/dev/null
    exec node scripts/e2e.ts "$@"
    ;;
  soak)
    bash scripts/build.sh
    bash scripts/build-controlplane.sh >/dev/null
    exec node scripts/soak.ts "$@"
    ;;
  conformance)
    bash scripts/build.sh
    bash scripts/build-controlplane.sh >/dev/null
    exec node scripts/conformance-netpol.ts "$@"
    ;;
  bench)
    bash scripts/build.sh
    name=${1:?bench name}
    shift
    case "$name" in
      cni|bgp) ;;
      pods|services) TWILL_BUILD_KUBELET=1 bash scripts/build-controlplane.sh >/dev/null ;;
      *) bash scripts/build-controlplane.sh >/dev/null ;;
    esac
    exec node "bench/$name.ts" "$@"
    ;;
  *) echo "unknown step: $step" >&2; exit 2 ;;
esac

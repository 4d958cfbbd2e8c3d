#!/usr/bin/env bash
# Builds the self-contained executables (Bun's --compile embeds the runtime,
# so the host needs no Node.js): dist/cni/twill (the CNI plugin; twill-ipam is
# the same binary) and dist/ctl/twillctl (the operator's CLI; kubectl-twill is
# the same binary, kubectl's plugin name). Bun was chosen over a Node
# single-executable by measurement (docs/cni.md); --bytecode ships
# precompiled bytecode, halving start-up. The executables read no .env or
# bunfig.toml from the working directory (Bun's default would), and JIT
# tier-up starts later (a run lasts milliseconds: JIT work is wasted; ADD CPU
# -2 ms, measured, docs/cni.md). Each is skipped when its sources have not
# changed since its last build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bun=node_modules/@oven/bun-linux-x64/bin/bun

# build DIR ENTRY NAME ALIAS SOURCE-DIRS...
build() {
  local out=$1 entry=$2 name=$3 alias=$4
  shift 4
  local hash
  hash=$( (find "$@" -name '*.ts' -print0 | sort -z | xargs -0 sha256sum; sha256sum package-lock.json scripts/build.sh) | sha256sum | cut -d' ' -f1)
  if [ -x "$out/$name" ] && [ "$(cat "$out/.build-hash" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  mkdir -p "$out"
  echo "[build] $out/$name (bun --compile)" >&2
  "$bun" build --compile --minify --bytecode --format=cjs --target=bun-linux-x64 \
    --no-compile-autoload-dotenv --no-compile-autoload-bunfig --compile-jit-policy=100 "$entry" --outfile "$out/$name.tmp" >/dev/null
  mv -f "$out/$name.tmp" "$out/$name"
  # One binary, two names: the name it is invoked by chooses what it is.
  ln -f "$out/$name" "$out/$alias"
  echo "$hash" > "$out/.build-hash"
}

build dist/cni cni/main.ts twill twill-ipam cni lib
build dist/ctl ctl/main.ts twillctl kubectl-twill ctl lib

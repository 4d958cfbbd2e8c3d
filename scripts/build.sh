#!/usr/bin/env bash
# Builds the CNI executables into dist/cni/: a self-contained binary (Bun's
# --compile embeds the runtime, so the host needs no Node.js). Bun was chosen
# over a Node single-executable by measurement (docs/cni.md); --bytecode ships
# precompiled bytecode, halving start-up. The executable reads no .env or
# bunfig.toml from the runtime's working directory (Bun's default would), and
# JIT tier-up starts later (a run lasts milliseconds: JIT work is wasted; ADD
# CPU -2 ms, measured, docs/cni.md). Skipped when the sources have not changed
# since the last build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bun=node_modules/@oven/bun-linux-x64/bin/bun
out=dist/cni
hash=$( (find cni lib -name '*.ts' -print0 | sort -z | xargs -0 sha256sum; sha256sum package-lock.json scripts/build.sh) | sha256sum | cut -d' ' -f1)
if [ -x "$out/twill" ] && [ "$(cat "$out/.build-hash" 2>/dev/null)" = "$hash" ]; then
  exit 0
fi
mkdir -p "$out"
echo "[build] dist/cni/twill (bun --compile)" >&2
"$bun" build --compile --minify --bytecode --format=cjs --target=bun-linux-x64 \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig --compile-jit-policy=100 cni/main.ts --outfile "$out/twill.tmp" >/dev/null
mv -f "$out/twill.tmp" "$out/twill"
# One binary, two names: invoked as twill-ipam it is the IPAM plugin alone.
ln -f "$out/twill" "$out/twill-ipam"
echo "$hash" > "$out/.build-hash"

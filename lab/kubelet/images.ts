import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// The lab's two images, built here with no registry: a pod image and a
// pause (sandbox) image, both one layer holding Debian's static busybox.
// Each is written as an OCI image layout in a tar file, which
// `ctr images import` takes as is.

export const BUSYBOX = "/bin/busybox";
export const POD_IMAGE = "docker.io/twill-lab/busybox:1.35";
export const PAUSE_IMAGE = "docker.io/twill-lab/pause:1";

// The applets the lab's pods use (probes, listeners, the pause loop, the echo server and its clients).
// Debian's busybox 1.35 `wget -T` crashes (SIGSEGV), so clients bound a request with `timeout` instead.
const APPLETS = ["sh", "sleep", "ping", "nc", "ip", "cat", "echo", "ls", "hostname", "wget", "true", "ifconfig", "kill", "ps", "httpd", "nslookup", "timeout"];

/** Where the echo server's CGI lives in the image: `httpd -h ECHO_WWW` serves it at ECHO_PATH. */
export const ECHO_WWW = "/www";
export const ECHO_PATH = "/cgi-bin/echo";

/**
 * The echo server's one page: which pod answered and the address the request came from (REMOTE_ADDR, the
 * peer of the TCP connection httpd accepted), so a probe shows whether a Service kept the client's address.
 */
const ECHO_CGI = `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n%s %s\n' "$(hostname)" "$REMOTE_ADDR"
`;

export interface Entry {
  name: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  data?: Buffer;
  target?: string;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

const pad512 = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** A PAX extended header carrying a path longer than ustar's 100 bytes (node_modules has them). */
function paxPath(name: string): Buffer {
  const rec = (len: number) => `${len} path=${name}\n`;
  let len = rec(0).length;
  while (rec(len).length !== len) len = rec(len).length;
  const data = Buffer.from(rec(len));
  return Buffer.concat([header({ name: "PaxHeader", type: "pax", mode: 0o644 }, data.length), data, pad512(data.length)]);
}

function header(e: Entry | { name: string; type: "pax"; mode: number; target?: string }, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name.slice(0, 100), 0, 100, "utf8");
  h.write(octal(e.mode, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(size, 12), 124);
  h.write(octal(0, 12), 136); // mtime 0: the same bytes, so the same digest, every build
  h.fill(" ", 148, 156);
  h.write({ file: "0", dir: "5", symlink: "2", pax: "x" }[e.type], 156);
  if (e.target) h.write(e.target, 157, 100, "utf8");
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + " ", 148);
  return h;
}

/** One entry: ustar header (after a PAX header when the path is long) and the data padded to 512-byte blocks. */
function tarEntry(e: Entry): Buffer[] {
  const size = e.type === "file" ? e.data!.length : 0;
  const parts = Buffer.byteLength(e.name) > 100 ? [paxPath(e.name)] : [];
  parts.push(header(e, size));
  if (e.type === "file") parts.push(e.data!, pad512(size));
  return parts;
}

export function tar(entries: Entry[]): Buffer {
  return Buffer.concat([...entries.flatMap(tarEntry), Buffer.alloc(1024)]);
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** The root filesystem both images share: busybox and its applet links. */
export function busyboxLayer(busybox = BUSYBOX): Buffer {
  const entries: Entry[] = [
    ...["bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "root/"].map((name) => ({ name, type: "dir" as const, mode: name === "tmp/" ? 0o1777 : 0o755 })),
    { name: "bin/busybox", type: "file", mode: 0o755, data: readFileSync(busybox) },
    ...APPLETS.map((a) => ({ name: `bin/${a}`, type: "symlink" as const, mode: 0o777, target: "busybox" })),
    ...["www/", "www/cgi-bin/"].map((name) => ({ name, type: "dir" as const, mode: 0o755 })),
    { name: `${ECHO_WWW.slice(1)}${ECHO_PATH}`, type: "file", mode: 0o755, data: Buffer.from(ECHO_CGI) },
    { name: "etc/passwd", type: "file", mode: 0o644, data: Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n") },
    { name: "etc/group", type: "file", mode: 0o644, data: Buffer.from("root:x:0:\nnobody:x:65534:\n") },
  ];
  return tar(entries);
}

export interface ImageSpec {
  name: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
}

/** An OCI image layout (oci-layout, index.json, blobs) in a tar, named by `io.containerd.image.name`. */
export function ociArchive(spec: ImageSpec, layer: Buffer): Buffer {
  const layerDigest = `sha256:${sha256(layer)}`;
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Env: spec.env ?? ["PATH=/bin"], ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}), ...(spec.cmd ? { Cmd: spec.cmd } : {}), WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [layerDigest] },
    history: [{ created_by: "twill lab (lab/kubelet/images.ts)" }],
  });
  const configDigest = `sha256:${sha256(config)}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: Buffer.byteLength(config) },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
  });
  const manifestDigest = `sha256:${sha256(manifest)}`;
  const tag = spec.name.split(":").pop()!;
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: manifestDigest,
        size: Buffer.byteLength(manifest),
        platform: { architecture: "amd64", os: "linux" },
        annotations: { "io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag },
      },
    ],
  });
  const blob = (digest: string, data: Buffer): Entry => ({ name: `blobs/sha256/${digest.slice(7)}`, type: "file", mode: 0o644, data });
  return tar([
    { name: "oci-layout", type: "file", mode: 0o644, data: Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })) },
    { name: "index.json", type: "file", mode: 0o644, data: Buffer.from(index) },
    { name: "blobs/", type: "dir", mode: 0o755 },
    { name: "blobs/sha256/", type: "dir", mode: 0o755 },
    blob(layerDigest, layer),
    blob(configDigest, Buffer.from(config)),
    blob(manifestDigest, Buffer.from(manifest)),
  ]);
}

/**
 * The pause program: PID 1 of every sandbox. A shell that exits on TERM/INT
 * (PID 1 gets no default signal handling) and otherwise waits forever.
 */
export const PAUSE_ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

/** Writes both image archives into `dir`; returns their paths. */
export function writeLabImages(dir: string): { pod: string; pause: string } {
  const layer = busyboxLayer();
  const pod = join(dir, "busybox.oci.tar");
  const pause = join(dir, "pause.oci.tar");
  writeFileSync(pod, ociArchive({ name: POD_IMAGE, cmd: ["/bin/sh"] }, layer));
  writeFileSync(pause, ociArchive({ name: PAUSE_IMAGE, entrypoint: PAUSE_ENTRYPOINT }, layer));
  return { pod, pause };
}

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { tar, type Entry } from "./images.ts";

// The images upstream's network e2e specs run (test/utils/image/manifest.go),
// built by the lab from files on this machine with no registry and no
// container engine, under upstream's own names: with imagePullPolicy
// IfNotPresent (the default for a tagged image) kubelet finds them in
// containerd and never pulls.
//
// - agnhost:2.63.0 — what upstream's Dockerfile (test/images/agnhost) gives
//   the specs: /agnhost (built with the control plane) and its agnhost-2 link,
//   curl, netcat-openbsd (`nc -vuz` for UDP), dig/nslookup/host, ip and ss,
//   bash, the busybox applets in place of Alpine's, /uploads, porter's
//   certificate, the user and group a security spec expects.
// - glibc-dns-testing:2.0.0 — upstream's is Debian + dnsutils for the DNS
//   specs' "jessie" prober: the same layer serves.
// - busybox:1.37.0-1 — Debian's busybox-static (1.35 here) with every applet.
// - pause:3.10.2 — `agnhost pause` (upstream's pause: exits on TERM/INT,
//   reaps children).
// - nginx:1.15-4 and 1.27-0 — Debian's nginx (1.22 here) serving its default
//   page on port 80 in the foreground, as upstream's (Alpine's nginx) does;
//   the EndpointSlice and Endpoints specs run it as a plain web server.
// agnhost:2.55 (AgnhostPrev) is the same layer under its name, as statefulset
// fixtures ask for it.

export const E2E_REGISTRY = "registry.k8s.io/e2e-test-images";
export const AGNHOST_IMAGE = `${E2E_REGISTRY}/agnhost:2.63.0`;
export const AGNHOST_PREV_IMAGE = `${E2E_REGISTRY}/agnhost:2.55`;
export const GLIBC_DNS_IMAGE = `${E2E_REGISTRY}/glibc-dns-testing:2.0.0`;
export const BUSYBOX_IMAGE = `${E2E_REGISTRY}/busybox:1.37.0-1`;
export const E2E_PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2";
export const NGINX_IMAGE = `${E2E_REGISTRY}/nginx:1.15-4`;
export const NGINX_NEW_IMAGE = `${E2E_REGISTRY}/nginx:1.27-0`;

const BUSYBOX = "/bin/busybox";
const K8S_MODULE = "/root/go/pkg/mod/k8s.io/kubernetes@v1.36.3";
const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Programs copied from this machine (Debian packages in scripts/setup.sh), by the path in the image → the
 * path here. `nc` is netcat-openbsd's: busybox's and ncat's lack the flags the specs pass (`-vuz`, `-w`).
 */
const TOOLS: Record<string, string> = {
  "usr/bin/curl": "/usr/bin/curl",
  "usr/bin/nc": "/usr/bin/nc.openbsd",
  "usr/bin/dig": "/usr/bin/dig",
  "usr/bin/nslookup": "/usr/bin/nslookup",
  "usr/bin/host": "/usr/bin/host",
  "usr/bin/bash": "/usr/bin/bash",
  "usr/sbin/ip": "/usr/sbin/ip",
  "usr/bin/ss": "/usr/bin/ss",
  // The DNS specs' /etc/hosts probes: `getent hosts NAME` (Alpine's musl-utils upstream, glibc's libc-bin here).
  "usr/bin/getent": "/usr/bin/getent",
};

/** Shared libraries a program loads, as ldd resolves them on this machine (the loader included). */
function libraries(program: string): string[] {
  const out = execFileSync("ldd", [program], { encoding: "utf8" });
  return [...out.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
}

const file = (name: string, data: Buffer | string, mode = 0o644): Entry => ({ name, type: "file", mode, data: Buffer.isBuffer(data) ? data : Buffer.from(data) });
const link = (name: string, target: string): Entry => ({ name, type: "symlink", mode: 0o777, target });

/** Every busybox applet, as the binary lists them. */
export function busyboxApplets(busybox = BUSYBOX): string[] {
  return execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox");
}

/** Directory entries for every parent of `entries` (a tar needs no order, but extractors like one). */
function withDirs(entries: Entry[], extra: string[] = []): Entry[] {
  const dirs = new Set<string>(extra);
  for (const e of entries) for (let d = dirname(e.name.replace(/\/$/, "")); d !== "."; d = dirname(d)) dirs.add(d);
  const dirEntries = [...dirs].sort().map((d): Entry => ({ name: `${d}/`, type: "dir", mode: d === "tmp" ? 0o1777 : 0o755 }));
  return [...dirEntries, ...entries];
}

const ETC: Entry[] = [
  file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"),
  file("etc/group", "root:x:0:\nnobody:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"),
  // glibc (2.34+) has files and dns built in; without this file it would still try both, but say so.
  file("etc/nsswitch.conf", "hosts: files dns\npasswd: files\ngroup: files\n"),
];

/** The root filesystem agnhost, glibc-dns-testing and pause share. */
export function agnhostLayer(agnhost: string, busybox = BUSYBOX): Buffer {
  const libs = [...new Set(Object.values(TOOLS).flatMap(libraries))];
  const real = new Set(Object.keys(TOOLS).map((p) => p.split("/").pop()!));
  const entries: Entry[] = [
    file("agnhost", readFileSync(agnhost), 0o755),
    link("agnhost-2", "agnhost"),
    file("localhost.crt", readFileSync(join(K8S_MODULE, "test/images/agnhost/porter/localhost.crt"))),
    file("localhost.key", readFileSync(join(K8S_MODULE, "test/images/agnhost/porter/localhost.key"))),
    file("bin/busybox", readFileSync(busybox), 0o755),
    // sh is bash: Debian's busybox ash runs some of its own applets ahead of PATH (its `ip` over iproute2's).
    ...busyboxApplets(busybox).filter((a) => !real.has(a) && a !== "sh").map((a) => link(`bin/${a}`, "busybox")),
    link("bin/sh", "/usr/bin/bash"),
    ...Object.entries(TOOLS).map(([at, from]) => file(at, readFileSync(realpathSync(from)), 0o755)),
    // The paths scripts name absolutely (#!/bin/bash, /bin/nc, /sbin/ip) lead to the real programs too.
    ...Object.keys(TOOLS).map((at) => link(`${at.startsWith("usr/sbin") ? "sbin" : "bin"}/${at.split("/").pop()}`, `/${at}`)),
    ...libs.map((l) => file(l.slice(1), readFileSync(realpathSync(l)), 0o755)),
    ...[..."bpf_pinning ematch_map group nl_protos rt_dsfield rt_protos rt_realms rt_scopes rt_tables".split(" ")].flatMap((f) => {
      try {
        return [file(`etc/iproute2/${f}`, readFileSync(`/etc/iproute2/${f}`))];
      } catch {
        return [];
      }
    }),
    ...ETC,
  ];
  return tar(withDirs(entries, ["uploads", "tmp", "root", "proc", "sys", "dev", "home", "home/user-defined-in-image", "var", "run", "usr/local/bin"]));
}

/** busybox:1.37.0-1's filesystem: busybox and every applet in /bin. */
export function busyboxE2eLayer(busybox = BUSYBOX): Buffer {
  const entries: Entry[] = [file("bin/busybox", readFileSync(busybox), 0o755), ...busyboxApplets(busybox).map((a) => link(`bin/${a}`, "busybox")), ...ETC];
  return tar(withDirs(entries, ["tmp", "root", "proc", "sys", "dev", "var", "usr/bin"]));
}

const NGINX_CONF = `# The lab's nginx image (lab/kubelet/e2e-images.ts): the default page on port 80, logs to the container's output.
user root;
worker_processes 1;
daemon off;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  access_log /dev/stdout;
  server {
    listen 80 default_server;
    root /usr/share/nginx/html;
    index index.html;
  }
}
`;

/** Debian's nginx with its libraries, a foreground configuration and the directories its build expects. */
export function nginxLayer(busybox = BUSYBOX): Buffer {
  const entries: Entry[] = [
    file("usr/sbin/nginx", readFileSync("/usr/sbin/nginx"), 0o755),
    ...[...new Set(libraries("/usr/sbin/nginx"))].map((l) => file(l.slice(1), readFileSync(realpathSync(l)), 0o755)),
    file("etc/nginx/nginx.conf", NGINX_CONF),
    file("etc/nginx/mime.types", readFileSync("/etc/nginx/mime.types")),
    file("usr/share/nginx/html/index.html", readFileSync("/usr/share/nginx/html/index.html")),
    file("bin/busybox", readFileSync(busybox), 0o755),
    ...busyboxApplets(busybox).map((a) => link(`bin/${a}`, "busybox")),
    ...ETC,
  ];
  return tar(withDirs(entries, ["var/lib/nginx/body", "var/lib/nginx/proxy", "var/lib/nginx/fastcgi", "var/lib/nginx/uwsgi", "var/lib/nginx/scgi", "var/log/nginx", "run", "tmp", "proc", "sys", "dev"]));
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

interface ImageDef {
  name: string;
  layer: Buffer;
  entrypoint?: string[];
  cmd?: string[];
}

/**
 * Several images in one OCI image layout tar (one index entry per name, blobs stored once), so a node imports
 * the shared 100 MB layer once. `ociArchive` (images.ts) is the one-image case.
 */
export function multiImageArchive(images: ImageDef[]): Buffer {
  const blobs = new Map<string, Buffer>();
  const put = (data: Buffer) => {
    const d = `sha256:${sha256(data)}`;
    blobs.set(d, data);
    return { digest: d, size: data.length };
  };
  const manifests = images.map((i) => {
    const layer = put(i.layer);
    const config = put(
      Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          config: { Env: [PATH], ...(i.entrypoint ? { Entrypoint: i.entrypoint } : {}), ...(i.cmd ? { Cmd: i.cmd } : {}), WorkingDir: "/" },
          rootfs: { type: "layers", diff_ids: [layer.digest] },
          history: [{ created_by: "twill lab (lab/kubelet/e2e-images.ts)" }],
        }),
      ),
    );
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
        }),
      ),
    );
    return {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      platform: { architecture: "amd64", os: "linux" },
      annotations: { "io.containerd.image.name": i.name, "org.opencontainers.image.ref.name": i.name.split(":").pop()! },
    };
  });
  const index = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests });
  return tar([
    file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    file("index.json", index),
    { name: "blobs/", type: "dir", mode: 0o755 },
    { name: "blobs/sha256/", type: "dir", mode: 0o755 },
    ...[...blobs].map(([d, data]) => file(`blobs/sha256/${d.slice(7)}`, data)),
  ]);
}

/** The names the archive holds, for a check that every spec's image is there. */
export const E2E_IMAGES = [AGNHOST_IMAGE, AGNHOST_PREV_IMAGE, GLIBC_DNS_IMAGE, E2E_PAUSE_IMAGE, BUSYBOX_IMAGE, NGINX_IMAGE, NGINX_NEW_IMAGE];

/** Writes the e2e images as one archive into `dir` (`bin`: the control plane's binaries, agnhost among them). */
export function writeE2eImages(dir: string, bin: string): string {
  const agn = agnhostLayer(join(bin, "agnhost"));
  const bb = busyboxE2eLayer();
  const ngx = nginxLayer();
  const path = join(dir, "e2e-images.oci.tar");
  writeFileSync(
    path,
    multiImageArchive([
      { name: AGNHOST_IMAGE, layer: agn, entrypoint: ["/agnhost"], cmd: ["pause"] },
      { name: AGNHOST_PREV_IMAGE, layer: agn, entrypoint: ["/agnhost"], cmd: ["pause"] },
      { name: GLIBC_DNS_IMAGE, layer: agn, cmd: ["/bin/sh"] },
      { name: E2E_PAUSE_IMAGE, layer: agn, entrypoint: ["/agnhost", "pause"] },
      { name: BUSYBOX_IMAGE, layer: bb, cmd: ["sh"] },
      { name: NGINX_IMAGE, layer: ngx, entrypoint: ["/usr/sbin/nginx"], cmd: [] },
      { name: NGINX_NEW_IMAGE, layer: ngx, entrypoint: ["/usr/sbin/nginx"], cmd: [] },
    ]),
  );
  return path;
}

import { writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { exec } from "../lib/kernel/exec.ts";

// The lab's certificates, made with openssl: a CA, the apiserver's serving
// certificate and client certificates for every identity the lab uses, plus
// the ServiceAccount token signing key. Everything lives in the lab's own
// directory and dies with it.

export interface Pki {
  dir: string;
  ca: string;
  caKey: string;
  saKey: string;
  saPub: string;
}

export interface Issued {
  cert: string;
  key: string;
}

async function openssl(args: string[]): Promise<void> {
  await exec(["openssl", ...args]);
}

/** Where a lab's CA keeps its files (createCa writes them; a running lab's PKI is found again from its directory). */
export const pkiFiles = (dir: string): Pki => ({ dir, ca: join(dir, "ca.crt"), caKey: join(dir, "ca.key"), saKey: join(dir, "sa.key"), saPub: join(dir, "sa.pub") });

export async function createCa(dir: string): Promise<Pki> {
  const { ca, caKey, saKey, saPub } = pkiFiles(dir);
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", caKey, "-out", ca, "-days", "7", "-subj", "/CN=twill-lab-ca"]);
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", saKey]);
  await openssl(["pkey", "-in", saKey, "-pubout", "-out", saPub]);
  return { dir, ca, caKey, saKey, saPub };
}

export interface CertRequest {
  name: string;
  commonName: string;
  organization?: string;
  /** Subject alternative names for a serving certificate ("DNS:x", "IP:1.2.3.4"). */
  sans?: string[];
  usage: "server" | "client";
}

export async function issue(pki: Pki, req: CertRequest): Promise<Issued> {
  const key = join(pki.dir, `${req.name}.key`);
  const csr = join(pki.dir, `${req.name}.csr`);
  const cert = join(pki.dir, `${req.name}.crt`);
  const ext = join(pki.dir, `${req.name}.ext`);
  const subject = `/CN=${req.commonName}${req.organization ? `/O=${req.organization}` : ""}`;
  await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", subject]);
  const lines = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${req.usage === "server" ? "serverAuth" : "clientAuth"}`,
  ];
  if (req.sans?.length) lines.push(`subjectAltName=${req.sans.join(",")}`);
  writeFileSync(ext, lines.join("\n") + "\n");
  // A random serial, not -CAcreateserial's shared counter file: nodes start side by side and issue at once.
  const serial = `0x${randomBytes(16).toString("hex").replace(/^[89a-f]/, "1")}`;
  await openssl(["x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", pki.caKey, "-set_serial", serial, "-out", cert, "-days", "7", "-extfile", ext]);
  return { cert, key };
}

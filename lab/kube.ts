import { CONTROL_PLANE_IP } from "./names.ts";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { connect, createServer, type Server } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

// How a process on the machine reaches a lab's apiserver without touching the
// machine's own network namespace: socat inside the control-plane namespace
// listens on a unix socket in the lab's directory (files cross namespace
// boundaries), and this process relays a loopback port to that socket. The
// apiserver's certificate names 127.0.0.1 and "kubernetes", so TLS verifies.

export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

export function startForwarder(socketPath: string): Promise<Forwarder> {
  const server: Server = createServer((client) => {
    const upstream = connect(socketPath);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      server.unref();
      resolve({ port, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

export interface Credentials {
  ca: string;
  cert?: string;
  key?: string;
  token?: string;
}

export function kubeConfig(port: number, creds: Credentials, user = "lab-admin"): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "lab", server: `https://127.0.0.1:${port}`, caData: Buffer.from(readFileSync(creds.ca)).toString("base64"), skipTLSVerify: false }],
    users: [
      {
        name: user,
        ...(creds.cert && creds.key
          ? { certData: readFileSync(creds.cert).toString("base64"), keyData: readFileSync(creds.key).toString("base64") }
          : {}),
        ...(creds.token ? { token: creds.token } : {}),
      },
    ],
    contexts: [{ name: "lab", cluster: "lab", user }],
    currentContext: "lab",
  });
  return kc;
}

export interface RawResponse {
  status: number;
  body: string;
}

/** A plain HTTPS request to the apiserver, for what the typed client hides (status codes, /readyz). */
export function rawRequest(port: number, creds: Credentials, method: string, path: string, body?: unknown, contentType = "application/json"): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        ca: readFileSync(creds.ca),
        ...(creds.cert && creds.key ? { cert: readFileSync(creds.cert), key: readFileSync(creds.key) } : {}),
        headers: {
          ...(creds.token ? { authorization: `Bearer ${creds.token}` } : {}),
          ...(body !== undefined ? { "content-type": contentType } : {}),
        },
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(body !== undefined ? JSON.stringify(body) : undefined);
  });
}

/**
 * A kubeconfig for a process inside a lab node reaching the apiserver over
 * the underlay; `user` is the YAML flow mapping of its credentials.
 */
export function underlayKubeconfig(ca: string, userName: string, user: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://${CONTROL_PLANE_IP}:6443", certificate-authority: "${ca}"}
users:
- name: ${userName}
  user: ${user}
contexts:
- name: lab
  context: {cluster: lab, user: ${userName}}
current-context: lab
`;
}

/** A kubeconfig for the lab's admin (client certificate) against `server`; `tlsServerName` when the address is not in the certificate. */
export function adminKubeconfig(lab: { name: string; admin: Credentials }, server: string, tlsServerName?: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: ${lab.name}
  cluster: {server: "${server}", certificate-authority: "${lab.admin.ca}"${tlsServerName ? `, tls-server-name: ${tlsServerName}` : ""}}
users:
- name: lab-admin
  user: {client-certificate: "${lab.admin.cert}", client-key: "${lab.admin.key}"}
contexts:
- name: ${lab.name}
  context: {cluster: ${lab.name}, user: lab-admin}
current-context: ${lab.name}
`;
}

import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { watchResource, type ListPage, type ResourceWatch } from "../../cluster/resource-watch.ts";

// BGPPeer TCP MD5 passwords (RFC 2385) come from one Secret: the daemon's RBAC
// (manifests/twill.yaml, Role twill-bgp-password) lets it get and watch only
// twill-system/twill-bgp-password, so a BGPPeer names a key in that Secret.
// The Secret is read by name (get), then watched with a metadata.name field
// selector (what a resourceNames rule allows; no list). Values are never logged.

export const PASSWORD_NAMESPACE = "twill-system";
export const PASSWORD_SECRET = "twill-bgp-password";
/** Linux's TCP_MD5SIG_MAXKEYLEN. */
const MAX_KEY_BYTES = 80;

export interface SecretRef {
  name: string;
  key: string;
}

/** The Secret as the daemon keeps it: present or not, and its data (base64, as the apiserver sends it). */
export interface PasswordSecret {
  /** False until the first read answered (found or not found). */
  synced: boolean;
  data?: Record<string, string>;
}

/**
 * A BGPPeer's password from the Secret (pure). A TwillError says why there is
 * none: BGP_PASSWORD_MISSING (no Secret, no such key) or BGP_PASSWORD_INVALID
 * (empty, or longer than the kernel takes).
 */
export function passwordFor(peer: string, ref: SecretRef, secret: PasswordSecret): string | TwillError {
  const where = `${PASSWORD_NAMESPACE}/${PASSWORD_SECRET}`;
  if (!secret.data) {
    return new TwillError("BGP_PASSWORD_MISSING", `BGPPeer ${peer} is left out: its TCP MD5 password is in Secret ${where}, which does not exist; create it with kubectl -n ${PASSWORD_NAMESPACE} create secret generic ${PASSWORD_SECRET} --from-literal=${ref.key}=PASSWORD`);
  }
  const b64 = secret.data[ref.key];
  if (b64 === undefined) {
    return new TwillError("BGP_PASSWORD_MISSING", `BGPPeer ${peer} is left out: Secret ${where} has no key "${ref.key}"; add it (kubectl -n ${PASSWORD_NAMESPACE} edit secret ${PASSWORD_SECRET}) or fix spec.password.secretKeyRef.key`);
  }
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length === 0 || bytes.length > MAX_KEY_BYTES) {
    return new TwillError("BGP_PASSWORD_INVALID", `BGPPeer ${peer} is left out: key "${ref.key}" of Secret ${where} is ${bytes.length} bytes; a TCP MD5 key is 1..${MAX_KEY_BYTES} bytes`);
  }
  return bytes.toString("utf8");
}

export interface PasswordWatch {
  secret(): PasswordSecret;
  onChange(fn: () => void): void;
  stop(): void;
}

interface SecretObj {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export function watchPasswordSecret(kc: KubeConfig, log: Logger, onError: (err: unknown) => void = () => {}): PasswordWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const w: ResourceWatch<SecretObj> = watchResource<SecretObj>({
    kc,
    log,
    path: `/api/v1/namespaces/${PASSWORD_NAMESPACE}/secrets`,
    what: `Secret ${PASSWORD_NAMESPACE}/${PASSWORD_SECRET}`,
    params: { fieldSelector: `metadata.name=${PASSWORD_SECRET}` },
    // A "list" of the one Secret by get: RBAC grants get on it, not list. Not
    // found is an empty list; the watch then starts at the newest version.
    listPage: async (): Promise<ListPage<SecretObj>> => {
      try {
        const s = await core.readNamespacedSecret({ name: PASSWORD_SECRET, namespace: PASSWORD_NAMESPACE });
        return { items: [s as SecretObj], metadata: { resourceVersion: s.metadata?.resourceVersion ?? "" } };
      } catch (err) {
        if ((err as { code?: number }).code === 404) return { items: [], metadata: { resourceVersion: "" } };
        throw err;
      }
    },
    slim: (o) => ({ metadata: { name: o.metadata?.name ?? "", namespace: o.metadata?.namespace ?? "", resourceVersion: o.metadata?.resourceVersion ?? "" }, data: o.data ?? {} }),
    onError,
  });
  return {
    secret: () => {
      const s = w.list().find((o) => o.metadata?.name === PASSWORD_SECRET);
      return { synced: w.synced(), ...(s ? { data: s.data ?? {} } : {}) };
    },
    onChange: (fn) => w.onChange(fn),
    stop: () => w.stop(),
  };
}

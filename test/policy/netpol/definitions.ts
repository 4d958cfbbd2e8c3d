import type { ContainerPort, Labels, Policy, Proto } from "./oracle.ts";

// Twill's own NetworkPolicy cases, as written by hand: the cluster, and per
// case the policies, the steps and which port/protocol pairs to probe. The
// expected matrices are not written here: generate.ts computes them with
// oracle.ts and writes model.json and cases/*.json.
//
// The cluster is chosen so that selectors have something to tell apart:
// namespace gamma has no `team` label and pod db no `tier` label (NotIn and
// DoesNotExist match them, In and Exists do not), and db names its TCP ports
// the other way round from web and api (a named port is looked up on each
// server separately).

export interface ModelPod {
  namespace: string;
  name: string;
  labels: Labels;
  containers: { name: string; ports: ContainerPort[] }[];
}

const NAMESPACES: { name: string; labels: Labels }[] = [
  { name: "alpha", labels: { team: "blue", env: "prod" } },
  { name: "beta", labels: { team: "red", env: "dev" } },
  { name: "gamma", labels: { env: "prod" } },
];

const tcp = (name: string, containerPort: number): ContainerPort => ({ name, containerPort, protocol: "TCP" });
const udp = (name: string, containerPort: number): ContainerPort => ({ name, containerPort, protocol: "UDP" });

function podsOf(namespace: string): ModelPod[] {
  const split = [
    { name: "server", ports: [tcp("http", 80), tcp("metrics", 81)] },
    { name: "responder", ports: [udp("dgram", 80), udp("echo", 81)] },
  ];
  return [
    { namespace, name: "web", labels: { app: "web", tier: "front" }, containers: split },
    { namespace, name: "api", labels: { app: "api", tier: "back" }, containers: split },
    { namespace, name: "db", labels: { app: "db" }, containers: [{ name: "db", ports: [tcp("metrics", 80), tcp("http", 81), udp("dgram", 80), udp("echo", 81)] }] },
  ];
}

export const MODEL = {
  namespaces: NAMESPACES.map((n) => ({ name: n.name, labels: { ...n.labels, "kubernetes.io/metadata.name": n.name } })),
  pods: NAMESPACES.flatMap((n) => podsOf(n.name)),
};

export type Target = `${Proto}/${number}`;

export type Action =
  | { action: "apply"; policy: Policy }
  | { action: "delete"; namespace: string; name: string }
  | { action: "setPodLabels"; pod: string; labels: Labels }
  | { action: "setNamespaceLabels"; namespace: string; labels: Labels };

export interface CaseDef {
  name: string;
  description: string;
  tags: string[];
  /** The port/protocol pairs probed, each as the full matrix of every pod to every pod. */
  targets: Target[];
  policies: Policy[];
  /** Each step probes the case's targets unless it names its own. */
  steps?: { description: string; actions: Action[]; targets?: Target[] }[];
}

const policy = (namespace: string, name: string, spec: Policy["spec"]): Policy => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { namespace, name },
  spec,
});
const app = (value: string) => ({ matchLabels: { app: value } });

export const CASES: CaseDef[] = [
  {
    name: "01-deny-ingress-whole-namespace",
    description: "An ingress policy with no rules selecting every pod of alpha: nothing reaches alpha's pods, alpha's pods still reach everyone.",
    tags: ["ingress", "default-deny"],
    targets: ["TCP/80", "UDP/81"],
    policies: [policy("alpha", "no-ingress", { podSelector: {}, policyTypes: ["Ingress"] })],
  },
  {
    name: "02-deny-egress-whole-namespace",
    description: "An egress policy with no rules selecting every pod of beta: beta's pods start no connection, and still accept them.",
    tags: ["egress", "default-deny"],
    targets: ["TCP/80", "UDP/80"],
    policies: [policy("beta", "no-egress", { podSelector: {}, policyTypes: ["Egress"] })],
  },
  {
    name: "03-deny-both-directions-with-empty-lists",
    description: "Both directions listed and both rule lists present but empty: gamma is cut off both ways (an empty list allows nothing).",
    tags: ["ingress", "egress", "default-deny", "empty-list"],
    targets: ["TCP/81"],
    policies: [policy("gamma", "sealed", { podSelector: {}, policyTypes: ["Ingress", "Egress"], ingress: [], egress: [] })],
  },
  {
    name: "04-policytypes-defaulting",
    description:
      "No policyTypes: alpha/api's policy has egress rules, so it isolates both directions and admits no ingress at all; beta/web's has an empty egress list, so it isolates ingress only and beta/web may still send anywhere.",
    tags: ["defaulting", "ingress", "egress"],
    targets: ["TCP/80"],
    policies: [
      policy("alpha", "api-talks-to-db", { podSelector: app("api"), egress: [{ to: [{ podSelector: app("db") }] }] }),
      policy("beta", "web-empty-egress", { podSelector: app("web"), egress: [] }),
    ],
  },
  {
    name: "05-ingress-from-pods-in-own-namespace",
    description: "alpha/db accepts only pods labelled app=api, and a bare podSelector means alpha's own pods: alpha/api only, not beta/api or gamma/api.",
    tags: ["ingress", "podSelector"],
    targets: ["TCP/80"],
    policies: [policy("alpha", "db-from-api", { podSelector: app("db"), policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: app("api") }] }] })],
  },
  {
    name: "06-ingress-from-labelled-namespaces",
    description: "beta/web accepts every pod of the namespaces labelled env=prod (alpha and gamma); its own namespace is dev and is refused.",
    tags: ["ingress", "namespaceSelector"],
    targets: ["TCP/81"],
    policies: [policy("beta", "web-from-prod", { podSelector: app("web"), policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "prod" } } }] }] })],
  },
  {
    name: "07-selector-in-and-notin",
    description:
      "In beta, pods whose tier is not front (api, and db, which has no tier at all) accept only pods whose app is web or db, from any namespace.",
    tags: ["ingress", "matchExpressions", "NotIn", "In"],
    targets: ["TCP/80"],
    policies: [
      policy("beta", "back-from-web-or-db", {
        podSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["front"] }] },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["web", "db"] }] } }] }],
      }),
    ],
  },
  {
    name: "08-selector-exists-and-doesnotexist",
    description: "In alpha, pods that have a tier label (web, api) accept only alpha's pods that have none (db).",
    tags: ["ingress", "matchExpressions", "Exists", "DoesNotExist"],
    targets: ["TCP/80"],
    policies: [
      policy("alpha", "tiered-from-untiered", {
        podSelector: { matchExpressions: [{ key: "tier", operator: "Exists" }] },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] } }] }],
      }),
    ],
  },
  {
    name: "09-namespace-notin-matches-missing-key",
    description: "gamma/api accepts namespaces whose team is not red: alpha (blue) and gamma, which has no team label; beta is refused.",
    tags: ["ingress", "namespaceSelector", "matchExpressions", "NotIn"],
    targets: ["TCP/80"],
    policies: [
      policy("gamma", "api-not-from-red", {
        podSelector: app("api"),
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: "team", operator: "NotIn", values: ["red"] }] } }] }],
      }),
    ],
  },
  {
    name: "10-egress-to-namespace-without-label",
    description: "beta/web may send only to namespaces with no team label, i.e. to gamma's pods, over TCP and UDP alike.",
    tags: ["egress", "namespaceSelector", "matchExpressions", "DoesNotExist"],
    targets: ["TCP/80", "UDP/80"],
    policies: [
      policy("beta", "web-to-teamless", {
        podSelector: app("web"),
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: { matchExpressions: [{ key: "team", operator: "DoesNotExist" }] } }] }],
      }),
    ],
  },
  {
    name: "11-pod-and-namespace-in-one-peer",
    description: "One peer holding both selectors is an AND: alpha/web accepts api pods of env=prod namespaces (alpha/api, gamma/api) and nothing else.",
    tags: ["ingress", "podSelector", "namespaceSelector", "and"],
    targets: ["TCP/80"],
    policies: [
      policy("alpha", "web-from-prod-api", {
        podSelector: app("web"),
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "prod" } }, podSelector: app("api") }] }],
      }),
    ],
  },
  {
    name: "12-pod-or-namespace-as-two-peers",
    description: "Two peers are an OR: alpha/web accepts alpha's db pod (a bare podSelector) and every pod of the team=red namespace (beta).",
    tags: ["ingress", "podSelector", "namespaceSelector", "or"],
    targets: ["TCP/80"],
    policies: [
      policy("alpha", "web-from-db-or-red", {
        podSelector: app("web"),
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ podSelector: app("db") }, { namespaceSelector: { matchLabels: { team: "red" } } }] }],
      }),
    ],
  },
  {
    name: "13-numeric-ports-and-protocols",
    description:
      "beta/api opens port 81 with no protocol written, which means TCP only; alpha/db opens UDP 80 only. Every other port and protocol of the two stays closed.",
    tags: ["ingress", "ports", "protocol", "defaulting", "udp"],
    targets: ["TCP/80", "TCP/81", "UDP/80", "UDP/81"],
    policies: [
      policy("beta", "api-81", { podSelector: app("api"), policyTypes: ["Ingress"], ingress: [{ ports: [{ port: 81 }] }] }),
      policy("alpha", "db-udp-80", { podSelector: app("db"), policyTypes: ["Ingress"], ingress: [{ ports: [{ protocol: "UDP", port: 80 }] }] }),
    ],
  },
  {
    name: "14-port-ranges-and-protocol-only-entries",
    description:
      "gamma/web opens TCP 80–81 and UDP 81–90 (plus a one-port range, 70–70); gamma/api opens every UDP port and no TCP port.",
    tags: ["ingress", "ports", "endPort", "protocol", "udp"],
    targets: ["TCP/80", "TCP/81", "UDP/80", "UDP/81"],
    policies: [
      policy("gamma", "web-ranges", {
        podSelector: app("web"),
        policyTypes: ["Ingress"],
        ingress: [
          { ports: [{ protocol: "TCP", port: 80, endPort: 81 }] },
          { ports: [{ protocol: "UDP", port: 81, endPort: 90 }, { protocol: "UDP", port: 70, endPort: 70 }] },
        ],
      }),
      policy("gamma", "api-any-udp", { podSelector: app("api"), policyTypes: ["Ingress"], ingress: [{ ports: [{ protocol: "UDP" }] }] }),
    ],
  },
  {
    name: "15-named-port-resolves-on-each-server",
    description: "Every pod of alpha opens the port named http: that is TCP 80 on web and api but TCP 81 on db, which names its ports the other way round.",
    tags: ["ingress", "named-port"],
    targets: ["TCP/80", "TCP/81"],
    policies: [policy("alpha", "http-only", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ ports: [{ port: "http" }] }] })],
  },
  {
    name: "16-egress-named-port-and-protocol-mismatch",
    description:
      "beta/web may send to the port named metrics on the destination (TCP 81 on web and api, TCP 80 on db); echo is a UDP name, so the TCP entry for it opens nothing.",
    tags: ["egress", "named-port", "protocol"],
    targets: ["TCP/80", "TCP/81", "UDP/81"],
    policies: [
      policy("beta", "web-to-metrics", { podSelector: app("web"), policyTypes: ["Egress"], egress: [{ ports: [{ port: "metrics" }, { protocol: "TCP", port: "echo" }] }] }),
    ],
  },
  {
    name: "17-egress-ipblock-with-except",
    description: "gamma/web may send to the /8 holding every pod except beta/api's address: only gamma/web -> beta/api is refused.",
    tags: ["egress", "ipBlock", "except"],
    targets: ["TCP/80"],
    policies: [
      policy("gamma", "web-to-block", {
        podSelector: app("web"),
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "{{podNet alpha/web 8}}", except: ["{{podIP beta/api}}/32"] } }] }],
      }),
    ],
  },
  {
    name: "18-except-narrows-only-its-own-peer",
    description:
      "alpha/api accepts the /8 except gamma/db and beta/web; a second peer admits gamma/db's /32 again, so only beta/web is refused.",
    tags: ["ingress", "ipBlock", "except", "or"],
    targets: ["TCP/80"],
    policies: [
      policy("alpha", "api-from-block", {
        podSelector: app("api"),
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [
              { ipBlock: { cidr: "{{podNet alpha/api 8}}", except: ["{{podIP gamma/db}}/32", "{{podIP beta/web}}/32"] } },
              { ipBlock: { cidr: "{{podIP gamma/db}}/32" } },
            ],
          },
        ],
      }),
    ],
  },
  {
    name: "19-stacked-policies-add-up",
    description:
      "Three policies on beta: deny everything, db on TCP 80 from team=blue (alpha), db and api on TCP 81 from beta/web. Each selected pod gets the union of what selects it; web gets nothing.",
    tags: ["ingress", "additive", "ports", "matchExpressions", "In"],
    targets: ["TCP/80", "TCP/81"],
    policies: [
      policy("beta", "deny-all", { podSelector: {}, policyTypes: ["Ingress"] }),
      policy("beta", "db-80-from-blue", {
        podSelector: app("db"),
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }], ports: [{ protocol: "TCP", port: 80 }] }],
      }),
      policy("beta", "backends-81-from-web", {
        podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["db", "api"] }] },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ podSelector: app("web") }], ports: [{ protocol: "TCP", port: 81 }] }],
      }),
    ],
  },
  {
    name: "20-empty-from-list-and-empty-rule",
    description:
      "An empty from list and a missing one both mean every peer (alpha/web and alpha/api, TCP 80 only); an empty rule {} means every peer on every port (alpha/db).",
    tags: ["ingress", "empty-list", "ports"],
    targets: ["TCP/80", "TCP/81"],
    policies: [
      policy("alpha", "web-from-empty-list", { podSelector: app("web"), policyTypes: ["Ingress"], ingress: [{ from: [], ports: [{ port: 80 }] }] }),
      policy("alpha", "api-no-from", { podSelector: app("api"), policyTypes: ["Ingress"], ingress: [{ ports: [{ port: 80 }] }] }),
      policy("alpha", "db-empty-rule", { podSelector: app("db"), policyTypes: ["Ingress"], ingress: [{}] }),
    ],
  },
  {
    name: "21-replies-pass-the-reverse-direction",
    description:
      "alpha/web may start nothing and beta/api may be reached by nothing; everyone still reaches alpha/web and beta/api still reaches everyone, because replies belong to an allowed connection.",
    tags: ["ingress", "egress", "stateful", "udp"],
    targets: ["TCP/80", "UDP/80"],
    policies: [
      policy("alpha", "web-no-egress", { podSelector: app("web"), policyTypes: ["Egress"] }),
      policy("beta", "api-no-ingress", { podSelector: app("api"), policyTypes: ["Ingress"] }),
    ],
  },
  {
    name: "22-deleting-policies-reopens",
    description: "beta is denied everything and beta/api opened to team=blue; deleting the deny reopens web and db but not api, deleting the other reopens api.",
    tags: ["ingress", "delete", "additive"],
    targets: ["TCP/80"],
    policies: [
      policy("beta", "deny-all", { podSelector: {}, policyTypes: ["Ingress"] }),
      policy("beta", "api-from-blue", { podSelector: app("api"), policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }] }] }),
    ],
    steps: [
      { description: "delete beta/deny-all", actions: [{ action: "delete", namespace: "beta", name: "deny-all" }] },
      { description: "delete beta/api-from-blue", actions: [{ action: "delete", namespace: "beta", name: "api-from-blue" }] },
    ],
  },
  {
    name: "23-pod-labels-change",
    description:
      "alpha/web accepts only role=client pods of alpha, and there are none; alpha/db gains the label and gets in; then alpha/web loses app=web, is no longer selected and is open to all.",
    tags: ["ingress", "podSelector", "pod-labels"],
    targets: ["TCP/80"],
    policies: [policy("alpha", "web-from-clients", { podSelector: app("web"), policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { role: "client" } } }] }] })],
    steps: [
      { description: "alpha/db labelled role=client", actions: [{ action: "setPodLabels", pod: "alpha/db", labels: { app: "db", role: "client" } }] },
      { description: "alpha/web relabelled app=frontend", actions: [{ action: "setPodLabels", pod: "alpha/web", labels: { app: "frontend", tier: "front" } }] },
    ],
  },
  {
    name: "24-namespace-labels-change",
    description: "gamma/api accepts team=blue namespaces (alpha); gamma then joins team blue and gets in; then alpha leaves it and is shut out.",
    tags: ["ingress", "namespaceSelector", "namespace-labels"],
    targets: ["TCP/80"],
    policies: [policy("gamma", "api-from-blue", { podSelector: app("api"), policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }] }] })],
    steps: [
      { description: "gamma labelled team=blue", actions: [{ action: "setNamespaceLabels", namespace: "gamma", labels: { env: "prod", team: "blue" } }] },
      { description: "alpha loses its team label", actions: [{ action: "setNamespaceLabels", namespace: "alpha", labels: { env: "prod" } }] },
    ],
  },
  {
    name: "25-sctp-rule-isolates-then-replaced",
    description:
      "gamma/db's only rule is for SCTP: it still isolates the pod, so no TCP or UDP gets in. Applied again under the same name with a TCP 80 rule from env=prod, the new version replaces the old one whole.",
    tags: ["ingress", "sctp", "replace", "namespaceSelector"],
    targets: ["TCP/80", "UDP/80"],
    policies: [policy("gamma", "db-access", { podSelector: app("db"), policyTypes: ["Ingress"], ingress: [{ ports: [{ protocol: "SCTP", port: 80 }] }] })],
    steps: [
      {
        description: "gamma/db-access replaced: TCP 80 from env=prod",
        actions: [
          {
            action: "apply",
            policy: policy("gamma", "db-access", {
              podSelector: app("db"),
              policyTypes: ["Ingress"],
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "prod" } } }], ports: [{ protocol: "TCP", port: 80 }] }],
            }),
          },
        ],
      },
    ],
  },
];

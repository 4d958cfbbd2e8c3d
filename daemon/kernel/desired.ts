// The kernel state the daemon wants, as plain data: computed by a backend
// from the cluster view (pure), then reconciled against the kernel.

export interface VxlanLink {
  name: string;
  vni: number;
  port: number;
  /** Underlay address the tunnel is sourced from, and its device. */
  local: string;
  dev: string;
  mac: string;
  mtu: number;
  /** Addresses on the device (the node's pod CIDR network address, /32). */
  addresses: string[];
}

export interface RouteSpec {
  /** CIDR. */
  dst: string;
  via: string;
  dev: string;
  onlink: boolean;
  /** A blackhole route (the bgp backend's own pod block): via and dev are empty. */
  blackhole?: boolean;
}

export interface NeighSpec {
  ip: string;
  mac: string;
  dev: string;
}

export interface FdbSpec {
  mac: string;
  dev: string;
  /** The remote VTEP's underlay address. */
  dst: string;
}

export interface DesiredState {
  links: VxlanLink[];
  routes: RouteSpec[];
  neighbours: NeighSpec[];
  fdb: FdbSpec[];
}

export const emptyState = (): DesiredState => ({ links: [], routes: [], neighbours: [], fdb: [] });

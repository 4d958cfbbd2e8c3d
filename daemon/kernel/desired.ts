import type { LeftOut } from "../cluster/left-out.ts";

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

/** A peer the backend could not connect, and why (the daemon logs it once and counts it). */
export interface PeerLeftOut extends LeftOut {
  node: string;
}

/** What reconcile programs. */
export interface KernelState {
  links: VxlanLink[];
  routes: RouteSpec[];
  neighbours: NeighSpec[];
  fdb: FdbSpec[];
}

/** A backend's answer: the kernel state, and the peers it had to leave out of it. */
export interface DesiredState extends KernelState {
  leftOut: PeerLeftOut[];
}

export const emptyState = (): DesiredState => ({ links: [], routes: [], neighbours: [], fdb: [], leftOut: [] });

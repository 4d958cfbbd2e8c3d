// Route protocol numbers Twill stamps on the routes it installs, so that each
// part of Twill recognises its own routes and never touches anyone else's
// (see /etc/iproute2/rt_protos for the numbers others use).

/** Routes to the pod /32s on this node, installed by the CNI plugin. */
export const RTPROT_TWILL_POD = 212;

/** Routes the node daemon installs to other nodes' pod CIDRs (overlay and BGP). */
export const RTPROT_TWILL = 211;

/**
 * Host-side veth names of pods start with this (the CNI plugin names them,
 * the daemon's policy table matches them): `twl` + 11 hex digits.
 */
export const HOST_VETH_PREFIX = "twl";

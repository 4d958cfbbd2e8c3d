// Run by Bun (bun:ffi), in a node namespace of a hand-built reference:
//   bun bench/support/bpf-fastpath.ts DEV...
// Loads a tc BPF program and attaches it at tcx ingress of each DEV; prints
// "attached" and holds the links until killed. The program forwards IPv4 TCP
// segments without SYN, FIN or RST straight to their next hop
// (bpf_fib_lookup, then bpf_redirect_neigh), so netfilter and the forwarding
// path see only handshakes and teardowns. It keeps no state and checks no
// policy: a benchmark reference only, the most any conntrack offload
// (nftables flowtable, BPF) could give back. Never a dataplane.
import { readFileSync } from "node:fs";
import { dlopen, FFIType, ptr } from "bun:ffi";

const SYS_BPF = 321; // x86_64
const BPF_PROG_LOAD = 5;
const BPF_LINK_CREATE = 28;
const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_TCX_INGRESS = 46;
const HELPER = { fibLookup: 69, redirectNeigh: 152 } as const;
/** __sk_buff field offsets (include/uapi/linux/bpf.h). */
const SKB = { ingressIfindex: 36, data: 76, dataEnd: 80 } as const;
/** struct bpf_fib_lookup (64 bytes) on the stack at r10 - 64: field offsets. */
const FIB = { family: 0, l4: 1, ifindex: 8, src: 16, dst: 32, size: 64 } as const;

type Insn = [code: number, dst: number, src: number, off: number, imm: number];

/** The program as instructions; jumps to "pass" are patched once its position is known. */
export function fastPathProgram(): Uint8Array {
  const out: Insn[] = [];
  const toPass: number[] = [];
  const op = (code: number, dst = 0, src = 0, off = 0, imm = 0) => void out.push([code, dst, src, off, imm]);
  const jumpToPass = (code: number, dst: number, src: number, imm: number) => {
    toPass.push(out.length);
    op(code, dst, src, 0, imm);
  };
  const [LDXW, LDXH, LDXB, STXW, STB, STDW] = [0x61, 0x69, 0x71, 0x63, 0x72, 0x7a];
  const [MOV_REG, MOV_IMM, ADD_IMM, CALL, EXIT] = [0xbf, 0xb7, 0x07, 0x85, 0x95];
  const [JGT_REG, JNE_IMM, JSET_IMM, JLE_IMM] = [0x2d, 0x55, 0x45, 0xb5];
  const fib = (field: number) => -FIB.size + field;

  op(MOV_REG, 6, 1); // r6 = skb
  op(LDXW, 2, 6, SKB.data);
  op(LDXW, 3, 6, SKB.dataEnd);
  op(MOV_REG, 4, 2);
  op(ADD_IMM, 4, 0, 0, 14 + 20 + 20); // Ethernet, IPv4 without options, TCP
  jumpToPass(JGT_REG, 4, 3, 0);
  op(LDXH, 5, 2, 12);
  jumpToPass(JNE_IMM, 5, 0, 0x0008); // EtherType 0x0800, read little-endian
  op(LDXB, 5, 2, 14);
  jumpToPass(JNE_IMM, 5, 0, 0x45); // IPv4, 20-byte header
  op(LDXB, 5, 2, 14 + 9);
  jumpToPass(JNE_IMM, 5, 0, 6); // TCP
  op(LDXB, 5, 2, 14 + 20 + 13);
  jumpToPass(JSET_IMM, 5, 0, 0x07); // FIN, SYN or RST: the stack's
  op(LDXB, 5, 2, 14 + 8);
  jumpToPass(JLE_IMM, 5, 0, 1); // TTL about to expire: the stack's
  for (let off = -FIB.size; off < 0; off += 8) op(STDW, 10, 0, off, 0);
  op(STB, 10, 0, fib(FIB.family), 2); // AF_INET
  op(STB, 10, 0, fib(FIB.l4), 6);
  // tot_len stays 0: the helper then judges the size as the stack would, GSO included.
  op(LDXW, 5, 6, SKB.ingressIfindex);
  op(STXW, 10, 5, fib(FIB.ifindex));
  op(LDXW, 5, 2, 14 + 12);
  op(STXW, 10, 5, fib(FIB.src));
  op(LDXW, 5, 2, 14 + 16);
  op(STXW, 10, 5, fib(FIB.dst));
  op(MOV_REG, 1, 6);
  op(MOV_REG, 2, 10);
  op(ADD_IMM, 2, 0, 0, -FIB.size);
  op(MOV_IMM, 3, 0, 0, FIB.size);
  op(MOV_IMM, 4, 0, 0, 0);
  op(CALL, 0, 0, 0, HELPER.fibLookup);
  jumpToPass(JNE_IMM, 0, 0, 0); // not BPF_FIB_LKUP_RET_SUCCESS
  op(LDXW, 1, 10, fib(FIB.ifindex)); // the egress device
  op(MOV_IMM, 2, 0, 0, 0);
  op(MOV_IMM, 3, 0, 0, 0);
  op(MOV_IMM, 4, 0, 0, 0);
  op(CALL, 0, 0, 0, HELPER.redirectNeigh); // returns TC_ACT_REDIRECT
  op(EXIT);
  const pass = out.length;
  op(MOV_IMM, 0, 0, 0, 0); // TCX_PASS: on through the stack
  op(EXIT);
  for (const at of toPass) out[at]![3] = pass - at - 1;

  const bytes = new Uint8Array(out.length * 8);
  const view = new DataView(bytes.buffer);
  out.forEach(([code, dst, src, off, imm], i) => {
    bytes[i * 8] = code;
    bytes[i * 8 + 1] = (dst & 15) | ((src & 15) << 4);
    view.setInt16(i * 8 + 2, off, true);
    view.setInt32(i * 8 + 4, imm, true);
  });
  return bytes;
}

function main(devices: string[]): void {
  const libc = dlopen("libc.so.6", { syscall: { args: [FFIType.i64, FFIType.i64, FFIType.ptr, FFIType.i64], returns: FFIType.i64 } });
  const bpf = (cmd: number, attr: Uint8Array) => Number(libc.symbols.syscall(SYS_BPF, cmd, ptr(attr), attr.length));
  const code = fastPathProgram();
  const license = new TextEncoder().encode("GPL\0");
  const log = new Uint8Array(1 << 16);
  const load = new Uint8Array(144);
  const l = new DataView(load.buffer);
  l.setUint32(0, BPF_PROG_TYPE_SCHED_CLS, true);
  l.setUint32(4, code.length / 8, true);
  l.setBigUint64(8, BigInt(ptr(code)), true);
  l.setBigUint64(16, BigInt(ptr(license)), true);
  l.setUint32(24, 1, true); // verifier log level
  l.setUint32(28, log.length, true);
  l.setBigUint64(32, BigInt(ptr(log)), true);
  const prog = bpf(BPF_PROG_LOAD, load);
  if (prog < 0) throw new Error(`the kernel refused the program: ${new TextDecoder().decode(log).replace(/\0[^]*$/, "")}`);
  for (const dev of devices) {
    const link = new Uint8Array(64);
    const k = new DataView(link.buffer);
    k.setUint32(0, prog, true);
    k.setUint32(4, Number(readFileSync(`/sys/class/net/${dev}/ifindex`, "utf8")), true);
    k.setUint32(8, BPF_TCX_INGRESS, true);
    if (bpf(BPF_LINK_CREATE, link) < 0) throw new Error(`attaching to ${dev} at tcx ingress failed`);
  }
  process.stdout.write("attached\n");
  setInterval(() => {}, 1 << 30);
}

if (process.argv[1]?.endsWith("bpf-fastpath.ts") && process.argv.length > 2) main(process.argv.slice(2));

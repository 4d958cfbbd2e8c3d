import { execIn } from "../../lib/kernel/netns.ts";

/** One TCP stream for `seconds`; returns Gbit/s as the receiver counted it. */
export async function iperf(client: string, server: string, serverIp: string, seconds = 4): Promise<number> {
  await execIn(server, ["sh", "-c", "nohup iperf3 -s -1 -p 5201 >/dev/null 2>&1 &"]);
  await new Promise((r) => setTimeout(r, 300));
  const out = await execIn(client, ["iperf3", "-c", serverIp, "-p", "5201", "-t", String(seconds), "-J"]);
  const j = JSON.parse(out.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

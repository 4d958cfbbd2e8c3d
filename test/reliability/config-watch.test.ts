import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendFactory } from "../../daemon/backends/registry.ts";
import { ConfigWatch } from "../../daemon/config-watch.ts";
import { parseConfig } from "../../daemon/config.ts";
import { createLogger } from "../../lib/log.ts";

// The config file's states at run time, on a real file (the lab test, control-plane.test.ts, shows the same on
// running daemons with the Event in the apiserver).

const GOOD = "clusterCIDR: 10.244.0.0/16\nbackend: vxlan\n";

describe("config watch", () => {
  let dir: string;
  let path: string;
  let registry: Registry;
  let events: string[];
  let watch: ConfigWatch;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "rel-config-"));
    path = join(dir, "config.yaml");
    writeFileSync(path, GOOD);
    registry = new Registry();
    events = [];
    watch = new ConfigWatch({ path, running: parseConfig(GOOD), pollSeconds: 3600, log: createLogger({ name: "t", level: "silent" }), registry, events: { record: (type, reason) => events.push(`${type} ${reason}`) }, validate: (c) => void backendFactory(c) });
    watch.start();
  });
  afterEach(() => {
    watch.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const gauge = async (name: string) => Number((await registry.getSingleMetricAsString(name)).trim().split(" ").at(-1));

  it("rejects broken YAML and an unknown backend, keeps reporting until the file is right again", async () => {
    expect(watch.check()).toBe("running");
    writeFileSync(path, "clusterCIDR: [\n");
    expect(watch.check()).toBe("invalid");
    expect(await gauge("twill_config_valid")).toBe(0);
    // Unchanged text is not reported again.
    expect(watch.check()).toBe("invalid");
    writeFileSync(path, GOOD.replace("vxlan", "wormhole"));
    expect(watch.check()).toBe("invalid");
    expect(await gauge("twill_config_rejected_total")).toBe(2);
    expect(events).toEqual(["Warning TwillConfigInvalid", "Warning TwillConfigInvalid"]);
    writeFileSync(path, `# a comment only\n${GOOD}`);
    expect(watch.check()).toBe("running");
    expect(await gauge("twill_config_valid")).toBe(1);
  });

  it("a valid change waits for a restart; a missing file is invalid", async () => {
    writeFileSync(path, GOOD.replace("vxlan", "host-gw"));
    expect(watch.check()).toBe("restart-needed");
    expect(await gauge("twill_config_restart_needed")).toBe(1);
    rmSync(path);
    expect(watch.check()).toBe("invalid");
  });
});

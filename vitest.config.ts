import { defineConfig } from "vitest/config";

// Integration tests create network namespaces and run real executables; they
// share the kernel, so files run in parallel but each names what it creates
// uniquely. No test has a timing threshold; the timeouts only bound a hang.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One real cluster (etcd, kube-apiserver, kube-controller-manager, nodes
    // and pods as namespaces) for the whole run.
    globalSetup: ["test/lab/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: "forks",
    reporters: ["default"],
  },
});

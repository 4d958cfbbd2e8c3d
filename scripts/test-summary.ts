// Prints the suite's closing line in the plain form every CI reader knows
// ("tests: N passed, N failed"), from vitest's JSON report.
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? "";
const report = JSON.parse(readFileSync(path, "utf8")) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);

// node lab/kubelet/write-images.ts DIR BIN [--twill] [--coredns]
// Writes the lab's image archives into DIR and prints their paths as one JSON
// line (LabImages). A program of its own so the lab runs it beside the control
// plane's start-up: building the Twill image is seconds of synchronous work
// (reading and hashing ~330 MB) that would otherwise stall the lab's event loop.
import { writeCorednsImage } from "../addons/coredns.ts";
import { writeLabImages } from "./images.ts";
import type { LabImages } from "./node.ts";
import { writeTwillImage } from "./twill-image.ts";

const [dir, bin, ...flags] = process.argv.slice(2);
if (!dir || !bin) {
  console.error("usage: write-images.ts DIR BIN [--twill] [--coredns]");
  process.exit(2);
}
const images: LabImages = { ...writeLabImages(dir), extra: [] };
if (flags.includes("--twill")) images.twill = writeTwillImage(dir).path;
if (flags.includes("--coredns")) images.extra!.push(writeCorednsImage(dir, bin));
console.log(JSON.stringify(images));

// In a real headless Chromium (Debian's chromium, driven by playwright-core): a page using the
// built package joins a room and gets a message from a Node client; and the dots demo, open in
// two pages, shows each player the other one moving. A screenshot is kept as an artifact.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { WebSocket } from "ws";
import { connect, encodeRtData, type WebSocketConstructor } from "../src/index.js";
import { serve } from "../demo/serve.js";
import { ROOT, startServer, type RunningServer } from "./server.js";

const CHROMIUM = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => !!p && existsSync(p),
);
const skip = CHROMIUM
  ? false
  : process.env.MOONRT_REQUIRE_TOOLS
    ? false
    : "no chromium here (.ci/run installs Debian's chromium)";

let server: RunningServer;
let site: Awaited<ReturnType<typeof serve>>;
let browser: Browser;

before(async () => {
  if (skip) return;
  assert.ok(CHROMIUM, "MOONRT_REQUIRE_TOOLS is set but chromium is not installed");
  server = await startServer(readFileSync(join(ROOT, "lua/examples/dots.lua"), "utf8"));
  site = await serve(0);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  site?.server.close();
  await server?.stop();
});

test("a page using the built package joins a room and receives a message from Node", { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(site.base + "blank");
  const received = page.evaluate(async (url) => {
    const module = "/dist/src/index.js";
    const m = await import(module);
    const client = await m.connect({ url, room: "browser-room", name: "chromium" });
    const [d] = await client.next("delivery", 10000);
    return { text: new TextDecoder().decode(d.payload), sender: d.sender, peer: client.peer };
  }, server.url);
  const node = await connect({
    url: server.url,
    room: "browser-room",
    name: "node",
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
  const [browserPlayer] = node.players.size ? [...node.players.values()] : await node.next("playerJoined", 10000);
  assert.equal(browserPlayer!.name, "chromium");
  node.send([browserPlayer!.peer], 7, "hello browser");
  const got = await received;
  assert.deepEqual([got.text, got.sender], ["hello browser", node.peer]);
  node.disconnect();
  await page.close();
});

test("the dots demo in two pages shows each player the other moving", { skip }, async () => {
  const open = async (name: string) => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    await page.goto(`${site.base}?server=${encodeURIComponent(server.url)}&room=demo-test&name=${name}`);
    await page.waitForFunction(() => "demo" in window, null, { timeout: 10000 });
    return page;
  };
  const ann = await open("Ann");
  const bo = await open("Bo");
  await ann.evaluate(() => (window as any).demo.moveTo(120, 140));
  await bo.evaluate(() => (window as any).demo.moveTo(620, 380));
  const sees = (page: typeof ann, who: string, x: number, y: number) =>
    page.waitForFunction(
      ([who, x, y]) =>
        (window as any).demo
          .others()
          .some((d: any) => d.name === who && Math.abs(d.x - (x as number)) < 1 && Math.abs(d.y - (y as number)) < 1),
      [who, x, y] as const,
      { timeout: 10000 },
    );
  await sees(ann, "Bo", 620, 380);
  await sees(bo, "Ann", 120, 140);
  // The script is authoritative: a position off the field reaches the others clamped.
  const cheat = await connect({
    url: server.url,
    room: "demo-test",
    name: "Cheat",
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
  cheat.send("all", 1, encodeRtData(new Map([[1, 5000], [2, -70]])), "sequenced");
  await sees(ann, "Cheat", 800, 0);
  const artifacts = join(ROOT, "target/tmp/artifacts");
  mkdirSync(artifacts, { recursive: true });
  await ann.screenshot({ path: join(artifacts, "demo-two-players.png") });
  cheat.disconnect();
  await ann.close();
  await bo.close();
});

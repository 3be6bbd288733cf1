// The dots demo: every player is a dot that others see move. Open it in two tabs.
// Page parameters: ?server=ws://host:7778/&room=dots&name=Ann

import { connect, decodeRtData, encodeRtData, type Client } from "../src/index.js";

interface Dot {
  name: string;
  x: number;
  y: number;
  colour: string;
}

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? `ws://${location.hostname || "127.0.0.1"}:7778/`;
const room = params.get("room") ?? "dots";
const name = params.get("name") ?? `player-${Math.floor(Math.random() * 1000)}`;
const canvas = document.getElementById("field") as HTMLCanvasElement;
const status = document.getElementById("status") as HTMLElement;
const list = document.getElementById("players") as HTMLElement;
const g = canvas.getContext("2d") as CanvasRenderingContext2D;

const dots = new Map<number, Dot>();
const held = new Set<string>();
let client: Client;
let me: Dot;
let target: { x: number; y: number } | null = null;
let lastSent = "";

function sendPosition(force = false): void {
  const key = `${Math.round(me.x)},${Math.round(me.y)}`;
  if (!force && key === lastSent) return;
  lastSent = key;
  client.send("all", 1, encodeRtData(new Map([[1, me.x], [2, me.y]])), "sequenced");
}

function draw(): void {
  g.clearRect(0, 0, canvas.width, canvas.height);
  for (const dot of [...dots.values(), me]) {
    g.fillStyle = dot.colour;
    g.beginPath();
    g.arc(dot.x, dot.y, 12, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = "#dde3ee";
    g.fillText(dot === me ? `${dot.name} (you)` : dot.name, dot.x + 16, dot.y + 4);
  }
  list.replaceChildren(
    ...[me, ...dots.values()].map((d) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.style.background = d.colour;
      li.append(swatch, `${d.name} ${Math.round(d.x)},${Math.round(d.y)}`);
      return li;
    }),
  );
}

function step(): void {
  const speed = 4;
  if (held.has("ArrowLeft") || held.has("a")) me.x -= speed;
  if (held.has("ArrowRight") || held.has("d")) me.x += speed;
  if (held.has("ArrowUp") || held.has("w")) me.y -= speed;
  if (held.has("ArrowDown") || held.has("s")) me.y += speed;
  if (target) {
    const dx = target.x - me.x;
    const dy = target.y - me.y;
    const dist = Math.hypot(dx, dy);
    if (dist <= speed) {
      me.x = target.x;
      me.y = target.y;
      target = null;
    } else {
      me.x += (dx / dist) * speed;
      me.y += (dy / dist) * speed;
    }
  }
  me.x = Math.max(0, Math.min(canvas.width, me.x));
  me.y = Math.max(0, Math.min(canvas.height, me.y));
  draw();
}

async function main(): Promise<void> {
  client = await connect({ url: server, room, name, reconnect: true });
  me = { name, x: 100 + Math.random() * 600, y: 100 + Math.random() * 300, colour: "#dde3ee" };
  status.textContent = `in room "${room}" as peer ${client.peer}`;
  for (const p of client.players.values()) dots.set(p.peer, { name: p.name, x: -100, y: -100, colour: "#888" });
  client.on("playerJoined", (p) => {
    dots.set(p.peer, { name: p.name, x: -100, y: -100, colour: "#888" });
    sendPosition(true); // so the newcomer sees us at once
  });
  client.on("playerLeft", (peer) => dots.delete(peer));
  client.on("playerProps", (peer, props) => {
    const colour = new TextDecoder().decode(props);
    if (peer === client.peer) me.colour = colour;
    const dot = dots.get(peer);
    if (dot) dot.colour = colour;
  });
  client.on("delivery", (d) => {
    if (d.opcode !== 1) return;
    const position = decodeRtData(d.payload);
    const dot = dots.get(d.sender);
    if (dot) {
      dot.x = Number(position.get(1));
      dot.y = Number(position.get(2));
    }
  });
  client.on("reconnected", (w) => (status.textContent = `reconnected as peer ${w.peer}`));
  client.on("close", (c) => (status.textContent = `closed: ${c.message} (code ${c.code})`));
  addEventListener("keydown", (e) => held.add(e.key));
  addEventListener("keyup", (e) => held.delete(e.key));
  canvas.addEventListener("click", (e) => (target = { x: e.offsetX, y: e.offsetY }));
  sendPosition(true);
  setInterval(step, 1000 / 60);
  setInterval(() => sendPosition(), 50); // 20 Hz at most
  // For tests and the console: move, and see what this page knows.
  (window as unknown as { demo: unknown }).demo = {
    peer: client.peer,
    moveTo: (x: number, y: number) => (target = { x, y }),
    me: () => ({ ...me }),
    others: () => [...dots.values()].map((d) => ({ ...d })),
  };
}

main().catch((e: unknown) => (status.textContent = `could not join: ${String(e)}`));

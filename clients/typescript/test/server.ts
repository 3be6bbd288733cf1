// Starts the real moonrt binary for a test: loopback ports chosen by the OS, its addresses read
// from its log, stopped when the test ends.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository root (this file is clients/typescript/dist/test/server.js). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** Builds the binaries the tests run if they are not there yet (CI's `cargo test` built them). */
export function binary(name: "moonrt" | "native_peer"): string {
  const path =
    name === "moonrt" ? join(ROOT, "target/debug/moonrt") : join(ROOT, "target/debug/examples/native_peer");
  const fromEnv = name === "moonrt" ? process.env.MOONRT_BIN : undefined;
  if (fromEnv) return fromEnv;
  if (!existsSync(path)) {
    const args = name === "moonrt" ? ["build", "--bin", "moonrt"] : ["build", "--example", "native_peer"];
    const built = spawnSync("cargo", args, { cwd: ROOT, stdio: "inherit" });
    if (built.status !== 0) throw new Error(`cargo ${args.join(" ")} failed`);
  }
  return path;
}

export interface RunningServer {
  /** The native TCP address, host:port. */
  tcp: string;
  /** The WebSocket URL. */
  url: string;
  stop(): Promise<void>;
}

/** Starts moonrt with `script` (Lua source) or none, and extra config TOML. */
export async function startServer(script?: string, extraToml = "", reconnectGraceMs = 0): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "moonrt-ts-"));
  let scriptPath = "";
  if (script !== undefined) {
    scriptPath = join(dir, "main.lua");
    writeFileSync(scriptPath, script);
  }
  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    `[server]\nlisten = "127.0.0.1:0"\nws_listen = "127.0.0.1:0"\n` +
      `[sessions]\nempty_session_linger_ms = 0\nreconnect_grace_ms = ${reconnectGraceMs}\n[script]\npath = ${JSON.stringify(scriptPath)}\n${extraToml}`,
  );
  const child: ChildProcess = spawn(binary("moonrt"), ["--config", config], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  });
  const lines = createInterface({ input: child.stderr! });
  const log: string[] = [];
  const addresses = await new Promise<{ tcp: string; ws: string }>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error("moonrt did not start:\n" + log.join("\n"))), 30000);
    lines.on("line", (line) => {
      log.push(line);
      const m = /listening tcp=(\S+) .*ws=(\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ tcp: m[1]!, ws: m[2]! });
      }
    });
    child.on("exit", (code) => reject(new Error(`moonrt exited (${code}):\n${log.join("\n")}`)));
  });
  return {
    tcp: addresses.tcp,
    url: `ws://${addresses.ws}/`,
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.on("exit", () => done());
        child.kill("SIGTERM");
      }),
  };
}

// Serves the demo page and the built package on http://127.0.0.1:8080/ (PORT to change it).

import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package folder (this file runs from dist/demo/). */
const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/** Starts the static server; resolves with it and its base URL. */
export function serve(port: number, host = "127.0.0.1"): Promise<{ server: Server; base: string }> {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    let file: string | null = null;
    if (path === "/" || path === "/index.html") file = join(PACKAGE, "demo/index.html");
    else if (path === "/blank") {
      res.writeHead(200, { "content-type": TYPES[".html"]! }).end("<!doctype html><title>blank</title>");
      return;
    } else if (path.startsWith("/dist/")) {
      const safe = normalize(path).replace(/^(\.\.[/\\])+/, "");
      file = join(PACKAGE, safe);
      if (!file.startsWith(join(PACKAGE, "dist"))) file = null;
    }
    if (!file) {
      res.writeHead(404).end("not found");
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  return new Promise((ok) =>
    server.listen(port, host, () => {
      const address = server.address();
      const actual = typeof address === "object" && address ? address.port : port;
      ok({ server, base: `http://${host}:${actual}/` });
    }),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { base } = await serve(Number(process.env.PORT ?? 8080));
  console.log(`demo at ${base} (open it in two tabs; the server is ws://127.0.0.1:7778/ by default)`);
}

#!/usr/bin/env python3
"""Runs every command the user-facing docs tell a user to type, as printed, on this clone.

Commands are read from the docs themselves (lines of ```sh blocks, and inline `code` that starts
with `cargo ` or names the bench), so a README edit cannot drift from what CI runs. Each command
must match one rule below that says how to smoke it; a command no rule knows fails CI, so a new
command in the docs needs a rule here before it lands.

- A server command (`cargo run --release [-- --dev | -- --listen ADDR ...]`) is started as
  printed, must log `listening`, must WELCOME a client speaking PROTOCOL.md, and must exit 0
  within its grace time after SIGTERM.
- `... -- check` must exit 0 and print `ok`.
- `cargo test` is .ci/run's own test step.
- Bench and example commands run as printed with MOONRT_BENCH_SCALE=smoke (tiny scale).
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "BENCHMARKS.md", "SCRIPTING.md"]


def commands_in(path):
    """Every command a doc prints: ```sh lines and inline `cargo ...` / bench spans."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        span = span.strip()
        if span.startswith("cargo ") or span.startswith("target/release/") or span.startswith(
            "moonrt-bench "
        ):
            found.append(span)
    return found


def hello(name):
    """HELLO v1, join-or-create `readme-smoke`, as PROTOCOL.md section 4 lays it out."""

    def s(v):
        b = v.encode()
        return struct.pack("<H", len(b)) + b

    body = bytes([0x01]) + struct.pack("<HBQ", 1, 3, 0) + s("readme-smoke") + s("") + s("") + s(name)
    return struct.pack("<I", len(body)) + body


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("connection closed before a whole frame")
            data += chunk
        return data

    (length,) = struct.unpack("<I", exactly(4))
    return exactly(length)


class Server:
    """A server command started as printed, its log collected on a thread."""

    def __init__(self, command):
        self.command = command
        self.lines = []
        self.listening = threading.Event()
        # `exec`: the shell becomes cargo, and `cargo run` execs the binary on Unix, so this pid
        # is the server itself, as a service manager would see it.
        self.proc = subprocess.Popen(
            "exec " + command,
            shell=True,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "listening tcp=" in line:
                self.listening.set()

    def address(self):
        for line in self.lines:
            m = re.search(r"listening tcp=(\S+)", line)
            if m:
                host, port = m.group(1).rsplit(":", 1)
                if host in ("0.0.0.0", "[::]"):
                    host = "127.0.0.1"
                return host.strip("[]"), int(port)
        raise RuntimeError("no listening line")

    def log(self):
        return "\n".join(self.lines[-40:])


def smoke_server(command):
    server = Server(command)
    try:
        # A fresh clone builds first: allow for a full release build.
        deadline = time.time() + 1800
        while not server.listening.wait(timeout=0.5):
            if server.proc.poll() is not None:
                time.sleep(0.5)  # let the log thread catch the last lines
                raise RuntimeError(f"exited with status {server.proc.returncode} before `listening`")
            if time.time() > deadline:
                raise RuntimeError("never logged `listening`")
        host, port = server.address()
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(hello("readme"))
            frame = read_frame(sock)
            if frame[0] != 0x81:
                raise RuntimeError(f"expected WELCOME (0x81), got type 0x{frame[0]:02x}")
        os.kill(server.proc.pid, signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        if code != 0:
            raise RuntimeError(f"exit status {code} after SIGTERM (expected 0)")
        if "--dev" in command and not any("development mode" in l for l in server.lines):
            raise RuntimeError("--dev did not announce development mode")
        if not any("stopped" in l for l in server.lines):
            raise RuntimeError("no `stopped` line: the stop was not graceful")
    except Exception as e:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
        raise RuntimeError(f"{e}\n--- log ---\n{server.log()}") from None


def run_to_completion(command, expect=None, timeout=1800):
    env = dict(os.environ, MOONRT_BENCH_SCALE="smoke")
    done = subprocess.run(
        command,
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}\n{out[-4000:]}")
    if expect and expect not in out:
        raise RuntimeError(f"output lacks {expect!r}\n{out[-4000:]}")


def smoke_demo(command):
    """A static demo server: it must print its address and serve the demo page there."""
    import urllib.request

    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=ROOT,
        env=dict(os.environ, PORT="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.time() + 600
        base = None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            m = re.search(r"demo at (http://\S+)", line)
            if m:
                base = m.group(1)
                break
            if time.time() > deadline:
                break
        if not base:
            raise RuntimeError("never printed `demo at http://...`")
        with urllib.request.urlopen(base, timeout=10) as page:
            body = page.read().decode()
        if "moonrt dots" not in body:
            raise RuntimeError("the page served is not the demo")
        with urllib.request.urlopen(base + "dist/demo/demo.js", timeout=10) as script:
            if script.status != 200:
                raise RuntimeError("the demo's script is not served")
    except Exception as e:
        raise RuntimeError(f"{e}\n--- output ---\n" + "\n".join(lines[-40:])) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


class AdminServer:
    """The shipped server, started once for the admin API commands the README prints (they
    build on each other: the search finds the session the POST created)."""

    server = None

    @classmethod
    def run(cls, command):
        import json

        if cls.server is None:
            cls.server = Server("cargo run --release")
            deadline = time.time() + 1800
            while not cls.server.listening.wait(timeout=0.5):
                if cls.server.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the shipped server did not start\n{cls.server.log()}")
        done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"exit status {done.returncode}\n{done.stderr}\n{cls.server.log()}")
        answer = json.loads(done.stdout)
        if "-X POST" in command and "/api/sessions" in command:
            if not isinstance(answer, dict) or not answer.get("id") or "connect" not in answer:
                raise RuntimeError(f"no session created: {done.stdout}")
        elif "/api/sessions?" in command:
            if not isinstance(answer, list) or not answer:
                raise RuntimeError(f"the search found nothing (the POST before it made one): {done.stdout}")
        elif isinstance(answer, dict) and "error" in answer:
            raise RuntimeError(f"the admin API answered an error: {done.stdout}")

    @classmethod
    def stop(cls):
        if cls.server is not None and cls.server.proc.poll() is None:
            os.kill(cls.server.proc.pid, signal.SIGTERM)
            cls.server.proc.wait(timeout=30)
        cls.server = None


def rule_for(command):
    """How to smoke a documented command, or None if no rule knows it."""
    if command == "cargo test":
        return "run by .ci/run's test step", None
    if re.fullmatch(r"cargo run --release( -- (--dev|--listen \S+|--config \S+)( --\S+( \S+)?)*)?", command):
        return "server", lambda: smoke_server(command)
    if re.fullmatch(r"cargo run --release -- test( \S+)*", command):
        return "script tests", lambda: run_to_completion(command, expect=" 0 failed")
    if re.fullmatch(r"cargo run --release -- check( \S+)?( --strict)?", command):
        return "check", lambda: run_to_completion(command, expect="ok")
    if re.fullmatch(r"cargo run --release --example (reload_latency|loopback_relay)( \d+)?", command):
        return "example (smoke scale)", lambda: run_to_completion(command)
    if command == "moonrt-bench reflector":
        # Named as what the scenarios start; it serves until killed, so its CLI is what we run.
        return "bench reflector CLI", lambda: run_to_completion(
            "target/release/moonrt-bench reflector --help", expect="--port"
        )
    m = re.fullmatch(r"(cargo build --release && )?(target/release/)?moonrt-bench (.+)", command)
    if m:
        exact = command if m.group(2) else "target/release/" + command
        if m.group(1) is None and not os.path.exists(os.path.join(ROOT, "target/release/moonrt-bench")):
            exact = "cargo build --release && " + exact
        return "bench (smoke scale)", lambda: run_to_completion(exact)
    if command == "cd clients/typescript && npm ci && npm run demo":
        return "demo page server", lambda: smoke_demo(command)
    if re.fullmatch(r"curl -s (-X POST )?'?http://127\.0\.0\.1:9090/api/\S+.*", command):
        return "admin API on the shipped server", lambda: AdminServer.run(command)
    if command == "cargo doc --open":
        # Nothing can be opened on CI; the docs must build.
        return "docs build", lambda: run_to_completion("cargo doc --no-deps")
    return None


def main():
    commands = []
    for doc in DOCS:
        for c in commands_in(doc):
            if c not in commands:
                commands.append(c)
    failures = 0
    ran = 0
    for command in commands:
        rule = rule_for(command)
        if rule is None:
            print(f"FAIL  {command}\n      no CI rule knows how to run this documented command")
            failures += 1
            continue
        what, run = rule
        if what != "admin API on the shipped server":
            AdminServer.stop()  # it holds the shipped ports other commands use
        if run is None:
            print(f"skip  {command}  ({what})")
            continue
        started = time.time()
        try:
            run()
            ran += 1
            print(f"ok    {command}  ({what}, {time.time() - started:.0f} s)", flush=True)
        except Exception as e:
            failures += 1
            print(f"FAIL  {command}  ({what})\n{e}", flush=True)
    AdminServer.stop()
    print(f"readme commands: {ran} ran as printed, {failures} failing")
    return 1 if failures or ran == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A moonrt client written only from PROTOCOL.md, to prove the document is enough.

Usage: doc_client.py HOST:PORT SESSION_NAME
Plays one session with three players: handshake, UDP bind, all four target kinds, groups,
ping over TCP and UDP, and a clean close. Prints "session complete" and exits 0, or raises.
The server must answer messages to peer 0 with the payload reversed (the test's session logic).
"""
import select
import socket
import struct
import sys
import time

TIMEOUT = 5.0


def s16(text):
    data = text.encode()
    return struct.pack("<H", len(data)) + data


def frame(msg_type, body=b""):
    return struct.pack("<IB", 1 + len(body), msg_type) + body


class Player:
    def __init__(self, addr, session, name):
        self.tcp = socket.create_connection(addr, timeout=TIMEOUT)
        self.rx = b""
        self.udp = None
        self.host = addr[0]
        # HELLO: version, mode 3 (join-or-create), session_id 0, name, token, player_id, name, payload
        hello = struct.pack("<HBQ", 1, 3, 0) + s16(session) + s16("") + s16("py-" + name) + s16(name)
        self.tcp.sendall(frame(0x01, hello + b"\x01\x02"))
        kind, body = self.read_tcp_frame()
        assert kind == 0x81, "expected WELCOME, got 0x%02x" % kind
        (self.version, self.peer, self.session_id, self.conn_id, self.secret, self.udp_port,
         self.server_time, self.idle_ms, self.max_frame) = struct.unpack_from("<HHQIQHQII", body, 0)
        off = struct.calcsize("<HHQIQHQII")
        self.session_name, off = read_str(body, off)
        (count,) = struct.unpack_from("<H", body, off)
        off += 2
        self.peers = []
        for _ in range(count):
            (peer,) = struct.unpack_from("<H", body, off)
            pid, off = read_str(body, off + 2)
            pname, off = read_str(body, off)
            self.peers.append((peer, pid, pname))

    def read_tcp_frame(self):
        while True:
            if len(self.rx) >= 4:
                (length,) = struct.unpack_from("<I", self.rx, 0)
                if len(self.rx) >= 4 + length:
                    body = self.rx[5:4 + length]
                    kind = self.rx[4]
                    self.rx = self.rx[4 + length:]
                    return kind, body
            chunk = self.tcp.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.rx += chunk

    def bind_udp(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.connect((self.host, self.udp_port))
        self.udp.settimeout(0.1)
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            self.send_udp(frame(0x08))
            try:
                data = self.udp.recv(2048)
            except socket.timeout:
                continue
            if any(kind == 0x8A for kind, _ in split_datagram(data)):
                return
        raise TimeoutError("no UDP_BOUND")

    def send_udp(self, frames):
        self.udp.send(struct.pack("<IQ", self.conn_id, self.secret) + frames)

    def data(self, intent, opcode, target, payload):
        return frame(0x02, struct.pack("<BI", intent, opcode) + target + payload)

    def send(self, intent, opcode, target, payload):
        self.tcp.sendall(self.data(intent, opcode, target, payload))

    def next_message(self, want, timeout=TIMEOUT):
        """Returns (transport, kind, body) of the first message whose kind is in `want`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.rx) >= 4 and len(self.rx) >= 4 + struct.unpack_from("<I", self.rx, 0)[0]:
                kind, body = self.read_tcp_frame()
                if kind in want:
                    return "tcp", kind, body
                continue
            socks = [self.tcp] + ([self.udp] if self.udp else [])
            ready, _, _ = select.select(socks, [], [], max(0.0, deadline - time.time()))
            if self.udp in ready:
                for kind, body in split_datagram(self.udp.recv(65536)):
                    if kind in want:
                        return "udp", kind, body
            if self.tcp in ready:
                chunk = self.tcp.recv(65536)
                if not chunk:
                    raise EOFError("server closed the connection")
                self.rx += chunk
        return None

    def expect_delivery(self):
        got = self.next_message({0x83})
        assert got, "expected a DELIVERY"
        transport, _, body = got
        intent, opcode, sender, seq = struct.unpack_from("<BIHI", body, 0)
        return transport, intent, opcode, sender, seq, body[11:]

    def expect_nothing(self, wait=0.2):
        got = self.next_message({0x83}, timeout=wait)
        assert got is None, "unexpected delivery %r" % (got,)


def read_str(buf, off):
    (length,) = struct.unpack_from("<H", buf, off)
    return buf[off + 2:off + 2 + length].decode(), off + 2 + length


def split_datagram(data):
    out = []
    while len(data) >= 4:
        (length,) = struct.unpack_from("<I", data, 0)
        out.append((data[4], data[5:4 + length]))
        data = data[4 + length:]
    return out


ALL, PEERS, GROUP, SERVER = b"\x00", b"\x01", b"\x02", b"\x03"


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    addr = (host, int(port))
    room = sys.argv[2]
    a = Player(addr, room, "ann")
    b = Player(addr, room, "bo")
    c = Player(addr, room, "cy")
    assert (a.peer, b.peer, c.peer) == (1, 2, 3)
    assert [p[0] for p in c.peers] == [1, 2] and c.peers[0][2] == "ann"
    assert a.session_id == b.session_id == c.session_id and c.session_name == room
    _, _, joined = a.next_message({0x84})
    assert struct.unpack_from("<H", joined, 0)[0] == 2

    b.bind_udp()
    c.bind_udp()

    # 1. reliable to all others
    a.send(0, 100, ALL, b"to all")
    for p in (b, c):
        transport, intent, opcode, sender, seq, payload = p.expect_delivery()
        assert (transport, intent, opcode, sender, seq, payload) == ("tcp", 0, 100, 1, 1, b"to all")

    # 2. to one listed peer
    a.send(0, 101, PEERS + struct.pack("<BH", 1, 3), b"to cy")
    assert c.expect_delivery()[5] == b"to cy"
    b.expect_nothing()

    # 3. groups: a and b join group 9, c sends unreliable over UDP to the group
    a.tcp.sendall(frame(0x03, struct.pack("<H", 9)))
    b.tcp.sendall(frame(0x03, struct.pack("<H", 9)))
    while True:
        _, _, body = a.next_message({0x86})
        group, count = struct.unpack_from("<HH", body, 0)
        if count == 2:
            assert group == 9 and struct.unpack_from("<HH", body, 4) == (1, 2)
            break
    c.send_udp(c.data(1, 102, GROUP + struct.pack("<H", 9), b"team"))
    transport, intent, _, sender, _, payload = b.expect_delivery()
    assert (transport, intent, sender, payload) == ("udp", 1, 3, b"team"), "b is bound: UDP"
    transport, _, _, _, _, payload = a.expect_delivery()
    assert (transport, payload) == ("tcp", b"team"), "a never bound UDP: TCP fallback"
    c.expect_nothing()

    # 4. to the server (peer 0): the session logic answers with the payload reversed
    a.send(0, 103, SERVER, b"abc")
    transport, _, opcode, sender, _, payload = a.expect_delivery()
    assert (opcode, sender, payload) == (103, 0, b"cba")

    # 5. ping over TCP and over UDP
    a.tcp.sendall(frame(0x06, struct.pack("<Q", 1234)))
    _, _, body = a.next_message({0x87})
    client_time, server_time = struct.unpack("<QQ", body[:16])
    assert client_time == 1234 and abs(server_time / 1e6 - time.time()) < 5
    b.send_udp(frame(0x06, struct.pack("<Q", 99)))
    transport, _, body = b.next_message({0x87})
    assert transport == "udp" and struct.unpack_from("<Q", body, 0)[0] == 99

    # 6. clean close
    a.tcp.sendall(frame(0x07))
    _, _, body = a.next_message({0x88})
    assert struct.unpack_from("<H", body, 0)[0] == 25
    _, _, body = b.next_message({0x85})
    assert struct.unpack("<HH", body[:4]) == (1, 25)
    print("session complete")


if __name__ == "__main__":
    main()

"""sdrecv - a stand-in for systemd's notification socket, for tests.

    python3 sdrecv.py ADDRESS OUT

Binds a datagram socket at ADDRESS (a path, or @NAME for an abstract one),
writes "bound" to OUT, then appends every datagram received to OUT, each
line of it prefixed with the sender's pid (from SCM_CREDENTIALS, as systemd
reads it), and a line "PID --" after each datagram. Runs until killed.
"""
import os
import socket
import struct
import sys


def main():
    address, out = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    with open(out, "a", buffering=1) as f:
        f.write("bound\n")
        creds = struct.calcsize("3i")
        while True:
            data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(creds))
            pid = "?"
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = str(struct.unpack("3i", value[:creds])[0])
            for line in data.decode("utf-8", "replace").split("\n"):
                f.write("%s %s\n" % (pid, line))
            f.write("%s --\n" % pid)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)

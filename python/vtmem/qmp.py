"""One QMP client (QEMU Machine Protocol over a unix socket).

    qmp = QMP(path, timeout=30, alive=lambda: proc.poll() is None)
    qmp.cmd("query-tmem")                # the result, or raises QMPError
    qmp.wait_event("DEVICE_DELETED", 10)  # the event, or None

Events that arrive while a command waits for its answer are kept in
qmp.events for wait_event().  A closed connection raises QMPClosed (a
RuntimeError), an answer that does not come in time TimeoutError.
"""

import json
import select
import socket
import time


class QMPError(Exception):
    """QEMU answered a command with an error."""

    def __init__(self, reply, name=None):
        self.cls = reply["error"].get("class")
        self.desc = reply["error"].get("desc", "")
        self.name = name
        super().__init__("%s: %s" % (self.cls, self.desc))


class QMPClosed(RuntimeError):
    """The connection ended (QEMU exited) or never came up."""


class QMP:
    def __init__(self, path, timeout=30, alive=None):
        """Connect to the QMP server socket @path, retrying until it comes
        up (QEMU creates it as it starts) for @timeout seconds, or until
        alive() returns False; then negotiate capabilities."""
        self.timeout = timeout
        self.buf = b""
        self.events = []
        deadline = time.monotonic() + timeout
        while True:
            if alive is not None and not alive():
                raise QMPClosed("QEMU exited before its QMP socket came up")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPClosed("QMP socket %s never came up in %ds"
                                    % (path, timeout))
                time.sleep(0.05)
        greeting = self._read()
        # QEMU 10.0 may write an event (RESUME, as the VM starts) before
        # the greeting of a monitor it has not yet seen open: its
        # 'commands' are set only when the open is handled, in a bottom
        # half.  Keep such events; the greeting follows.
        while "event" in greeting and "QMP" not in greeting:
            self.events.append(greeting)
            greeting = self._read()
        if "QMP" not in greeting:
            raise QMPClosed("not a QMP greeting: %s" % greeting)
        self.cmd("qmp_capabilities")

    def _read(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP: no answer in %ss" % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            data = self.sock.recv(65536)
            if not data:
                raise QMPClosed("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd_raw(self, name, **arguments):
        """Send a command; return QEMU's answer as it came (return or
        error).  Waits self.timeout seconds at most."""
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def cmd(self, name, **arguments):
        """Run a command; return its result or raise QMPError."""
        reply = self.cmd_raw(name, **arguments)
        if "error" in reply:
            raise QMPError(reply, name)
        return reply["return"]

    def wait_event(self, name, timeout):
        """The first event called name within timeout seconds, else None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.events.append(self._read(timeout=left))
            except TimeoutError:
                return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

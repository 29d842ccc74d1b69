#!/usr/bin/env python3
"""A slow and lossy fake BMC on pyghmi (IPMI 2.0 / RMCP+ only, cipher suite 3).

    fakebmc.py PORT USER PASS [--delay SECONDS] [--drop-every N] [--state DIR]

Listens on 127.0.0.1:PORT. Power and boot device live in memory; with --state they are
also written to DIR in the layout of chassis.sh (the ipmi_sim hook), so a test reads both
simulators the same way:
    DIR/power       0 or 1
    DIR/boot        boot device, in ipmi_sim's words: none (no override), pxe,
                    default (force hard disk), cdrom, bios, and also safe, floppy
    DIR/bootflags   the flags of the last Set Boot Options parameter 5, space separated:
                    "valid", "persistent", "efi" (ipmi_sim cannot report these)
    DIR/resets      one line per hard reset
    DIR/power.log   one line per call: "<time> get power", "<time> set power 1", ...
                    "<time> set boot pxe persistent efi", "<time> drop datagram 7"

--delay SECONDS  sleep before answering each IPMI command (session set-up is not slowed).
                 The whole BMC stalls meanwhile, like a busy BMC.
--drop-every N   silently drop every Nth datagram received (1-based count over all
                 datagrams, session set-up included): the client must retransmit.

`chassis power cycle` turns the power off at once and on again a second later, as
ipmi_sim does. Stops on SIGTERM/SIGINT.
"""
import argparse
import os
import signal
import sys
import threading
import time

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.private.session as ipmisession

# Boot device selector (bits 5:2 of boot flags byte 2) -> name; ipmi_sim's names where it has one.
BOOT_NAMES = {0: "none", 1: "pxe", 2: "default", 3: "safe", 5: "cdrom", 6: "bios", 15: "floppy"}
BOOT_SELECTORS = {v: k for k, v in BOOT_NAMES.items()}


class State:
    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.power = 0
        self.boot = "none"
        self.bootflags = []
        if directory:
            os.makedirs(directory, exist_ok=True)
            self._write("power", "0")
            self._write("boot", "none")
            self._write("bootflags", "")

    def _write(self, name, value):
        if self.dir:
            tmp = os.path.join(self.dir, f".{name}.tmp")
            with open(tmp, "w") as f:
                f.write(value + "\n")
            os.replace(tmp, os.path.join(self.dir, name))

    def log(self, line):
        line = f"{time.time():.6f} {line}"
        print(line, flush=True)
        if self.dir:
            with self.lock, open(os.path.join(self.dir, "power.log"), "a") as f:
                f.write(line + "\n")

    def set_power(self, on):
        with self.lock:
            self.power = 1 if on else 0
            self._write("power", str(self.power))

    def set_boot(self, device, flags):
        with self.lock:
            self.boot = device
            self.bootflags = flags
            self._write("boot", device)
            self._write("bootflags", " ".join(flags))

    def reset(self):
        if self.dir:
            with self.lock, open(os.path.join(self.dir, "resets"), "a") as f:
                f.write(f"{time.time():.6f} reset\n")


class FakeBmc(bmc.Bmc):
    def __init__(self, authdata, port, state, delay):
        super().__init__(authdata, port=port, address="127.0.0.1")
        self.state = state
        self.delay = delay
        # Something for `mc info` to show: manufacturer 4753 (MontaVista, as ipmi_sim). (A product id
        # would be shown wrong: pyghmi sends the manufacturer id in 4 bytes instead of 3.)
        self.deviceid = 0x20
        self.revision = 1
        self.firmwaremajor = 1
        self.firmwareminor = 0x19
        self.mfgid = 4753

    def handle_raw_request(self, request, session):
        if self.delay:
            time.sleep(self.delay)
        return super().handle_raw_request(request, session)

    def get_power_state(self):
        self.state.log("get power")
        return "on" if self.state.power else "off"

    def power_on(self):
        self.state.log("set power 1")
        self.state.set_power(True)

    def power_off(self):
        self.state.log("set power 0")
        self.state.set_power(False)

    def power_shutdown(self):
        self.state.log("set shutdown 1")
        self.state.set_power(False)

    def power_reset(self):
        self.state.log("set reset 1")
        self.state.reset()

    def power_cycle(self):
        self.power_off()
        threading.Timer(1.0, self.power_on).start()

    def pulse_diag(self):
        self.state.log("set diag 1")

    def cold_reset(self):
        self.state.log("bmc cold reset")

    def get_system_boot_options(self, request, session):
        if request["data"][0] != 5:
            return session.send_ipmi_response(code=0x80)  # parameter not supported
        self.state.log("get boot")
        flags = self.state.bootflags
        b1 = (0x80 if "valid" in flags else 0) | (0x40 if "persistent" in flags else 0)
        b1 |= 0x20 if "efi" in flags else 0
        b2 = BOOT_SELECTORS[self.state.boot] << 2
        session.send_ipmi_response(data=[1, 5, b1, b2, 0, 0, 0])

    def set_system_boot_options(self, request, session):
        data = request["data"]
        param = data[0] & 0x7F
        if param in (0, 3, 4):  # set in progress, valid bit clearing, boot info ack
            return session.send_ipmi_response()
        if param != 5:
            return session.send_ipmi_response(code=0x80)
        if len(data) < 3:
            return session.send_ipmi_response(code=0xC7)  # request data length invalid
        device = BOOT_NAMES.get((data[2] >> 2) & 0xF)
        if device is None:
            return session.send_ipmi_response(code=0xCC)  # invalid data field
        flags = [n for bit, n in ((0x80, "valid"), (0x40, "persistent"), (0x20, "efi")) if data[1] & bit]
        self.state.log(" ".join(["set boot", device] + flags))
        self.state.set_boot(device, flags)
        session.send_ipmi_response()


def install_drop_every(n, state):
    """Drops every nth datagram pyghmi reads.

    pyghmi's I/O thread reads every socket through the module function
    session._io_recvfrom (looked up at call time), so wrapping it sees each datagram
    before any session does. One-byte datagrams are pyghmi's own wake-up pokes: they are
    neither counted nor dropped."""
    original = ipmisession._io_recvfrom
    count = [0]

    def recvfrom(sock, size):
        while True:
            got = original(sock, size)
            if got is None or len(got[0]) < 4:
                return got
            count[0] += 1
            if count[0] % n:
                return got
            state.log(f"drop datagram {count[0]}")

    ipmisession._io_recvfrom = recvfrom


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("--delay", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--drop-every", type=int, default=0, metavar="N")
    p.add_argument("--state", metavar="DIR")
    a = p.parse_args()
    if a.drop_every < 0 or a.drop_every == 1:
        p.error("--drop-every must be at least 2 (1 would drop everything)")
    state = State(a.state)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if a.drop_every:
        install_drop_every(a.drop_every, state)
    server = FakeBmc({a.user: a.password}, a.port, state, a.delay)
    state.log(f"listening on 127.0.0.1:{a.port} delay={a.delay} drop_every={a.drop_every}")
    try:
        server.listen()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

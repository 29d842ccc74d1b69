#!/usr/bin/env python3
"""Writes the snmpsim recordings the SNMP tests and the benchmark run against.

    gen-snmprec.py OUTDIR [NAME:KIND[:COUNT] ...]

KIND is `switch` (IF-MIB ifTable + ifXTable; ifAdminStatus writable through the
`ifport` variation module, ifOperStatus following it, ifAlias writable), `switch-ro`
(the same table with plain, read-only records: what a read-only community sees) or
`apc` (an APC rack PDU: PowerNet-MIB sPDUOutletControl/Config and rPDUOutletControl/
Status tables, outlets switched through the `apcoutlet` variation module).

snmpsim serves `OUTDIR/NAME.snmprec` to the v1/v2c community NAME and to the v3
context NAME. Without specs it writes what the tests use: switch48 (48 ports),
switch48-ro (read-only view of a 48-port switch), switch8 (8 ports) and pdu (24
outlets).
"""
import os
import sys

DEFAULT = ["switch48:switch:48", "switch48-ro:switch-ro:48", "switch8:switch:8", "pdu:apc:24"]

IF = "1.3.6.1.2.1.2.2.1"       # ifEntry
IFX = "1.3.6.1.2.1.31.1.1.1"   # ifXEntry
APC = "1.3.6.1.4.1.318.1.1"


def system(descr, object_id, name):
    return [("1.3.6.1.2.1.1.1.0", "4", descr),
            ("1.3.6.1.2.1.1.2.0", "6", object_id),
            ("1.3.6.1.2.1.1.3.0", "67", "123456"),
            ("1.3.6.1.2.1.1.5.0", "4", name)]


def switch(name, n, writable):
    r = system(f"Fake {n}-port switch (snmpsim)", "1.3.6.1.4.1.9.1.1208", name)
    r.append(("1.3.6.1.2.1.2.1.0", "2", str(n)))  # ifNumber
    for i in range(1, n + 1):
        uplink = n >= 8 and i > n - 2
        # The last ports of a big switch have no cable: link down while admin up.
        unplugged = n >= 24 and n - 8 < i <= n - 2
        alias = f"uplink-core-{i - n + 2}" if uplink else ""
        r += [(f"{IF}.1.{i}", "2", str(i)),
              (f"{IF}.2.{i}", "4", f"GigabitEthernet1/0/{i}"),
              (f"{IF}.3.{i}", "2", "6"),
              (f"{IF}.5.{i}", "66", "1000000000" if not uplink else "4294967295"),
              (f"{IF}.6.{i}", "4x", "0011223344%02x" % i),
              (f"{IFX}.1.{i}", "4", f"Gi1/0/{i}"),
              (f"{IFX}.15.{i}", "66", "10000" if uplink else "1000")]
        if writable:
            r += [(f"{IF}.7.{i}", "2:ifport", "admin"),
                  (f"{IF}.8.{i}", "2:ifport", "oper-nolink" if unplugged else "oper"),
                  (f"{IFX}.18.{i}", "4:writecache", f"value={alias}")]
        else:
            r += [(f"{IF}.7.{i}", "2", "1"),
                  (f"{IF}.8.{i}", "2", "2" if unplugged else "1"),
                  (f"{IFX}.18.{i}", "4", alias)]
    return r


def apc(name, n):
    r = system("APC Web/SNMP Management Card (fake, snmpsim)", "1.3.6.1.4.1.318.1.3.4.5", name)
    r += [(f"{APC}.4.1.4.0", "4", "AP7953"),   # sPDUIdentModelNumber
          (f"{APC}.4.4.1.0", "2", str(n)),     # sPDUOutletControlTableSize
          (f"{APC}.4.5.1.0", "2", str(n)),     # sPDUOutletConfigTableSize
          (f"{APC}.12.1.1.0", "4", name),      # rPDUIdentName
          (f"{APC}.12.1.5.0", "4", "AP7953")]  # rPDUIdentModelNumber
    for i in range(1, n + 1):
        label = f"Outlet {i}"
        r += [(f"{APC}.4.4.2.1.1.{i}", "2", str(i)),           # sPDUOutletControlIndex
              (f"{APC}.4.4.2.1.2.{i}", "2", "2"),              # sPDUOutletPending: noCommandPending
              (f"{APC}.4.4.2.1.3.{i}", "2:apcoutlet", "ctl"),  # sPDUOutletCtl
              (f"{APC}.4.4.2.1.4.{i}", "4", label),            # sPDUOutletCtlName
              (f"{APC}.4.5.2.1.1.{i}", "2", str(i)),           # sPDUOutletConfigIndex
              (f"{APC}.4.5.2.1.3.{i}", "4", label),            # sPDUOutletName
              (f"{APC}.12.3.3.1.1.1.{i}", "2", str(i)),        # rPDUOutletControlIndex
              (f"{APC}.12.3.3.1.1.2.{i}", "4", label),         # rPDUOutletControlOutletName
              (f"{APC}.12.3.3.1.1.3.{i}", "2", "1"),           # rPDUOutletControlOutletPhase
              (f"{APC}.12.3.3.1.1.4.{i}", "2:apcoutlet", "cmd"),  # rPDUOutletControlOutletCommand
              (f"{APC}.12.3.5.1.1.1.{i}", "2", str(i)),        # rPDUOutletStatusIndex
              (f"{APC}.12.3.5.1.1.2.{i}", "4", label),         # rPDUOutletStatusOutletName
              (f"{APC}.12.3.5.1.1.3.{i}", "2", "1"),           # rPDUOutletStatusOutletPhase
              (f"{APC}.12.3.5.1.1.4.{i}", "2:apcoutlet", "state"),  # rPDUOutletStatusOutletState
              (f"{APC}.12.3.5.1.1.5.{i}", "2", "2")]           # rPDUOutletStatusCommandPending
    return r


def write(out, name, recs):
    recs.sort(key=lambda r: tuple(int(x) for x in r[0].split(".")))
    with open(os.path.join(out, f"{name}.snmprec"), "w") as f:
        for oid, tag, val in recs:
            f.write(f"{oid}|{tag}|{val}\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for spec in sys.argv[2:] or DEFAULT:
        name, kind, *count = spec.split(":")
        n = int(count[0]) if count else (24 if kind == "apc" else 48)
        if kind == "switch":
            write(out, name, switch(name, n, True))
        elif kind == "switch-ro":
            write(out, name, switch(name, n, False))
        elif kind == "apc":
            write(out, name, apc(name, n))
        else:
            sys.exit(f"unknown kind {kind!r} in {spec!r}")


if __name__ == "__main__":
    main()

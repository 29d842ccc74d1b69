# snmpsim variation module "apcoutlet": the outlets of an APC rack PDU, switched
# through either of PowerNet-MIB's control tables and read through both.
#
#   ...318.1.1.4.4.2.1.3.N|2:apcoutlet|ctl      sPDUOutletCtl.N (read-write)
#   ...318.1.1.12.3.3.1.1.4.N|2:apcoutlet|cmd   rPDUOutletControlOutletCommand.N (read-write)
#   ...318.1.1.12.3.5.1.1.4.N|2:apcoutlet|state rPDUOutletStatusOutletState.N (read-only)
#
# Every outlet starts on. GETs read on(1) or off(2). sPDUOutletCtl takes on(1),
# off(2), reboot(3), onWithDelay(5), offWithDelay(6), rebootWithDelay(7);
# rPDUOutletControlOutletCommand takes immediateOn(1), immediateOff(2),
# immediateReboot(3), delayedOn(4), delayedOff(5), delayedReboot(6),
# cancelPendingCommand(7). Delays are not simulated and a reboot ends on; other
# values are wrongValue, a SET of the status column notWritable. A reboot counter
# per outlet is kept for tests in `reboots`. State is per recording and outlet.
from pysnmp.smi import error
from snmpsim.grammar.snmprec import SnmprecGrammar

on = {}       # (data file, outlet) -> bool
reboots = {}  # (data file, outlet) -> int

CTL = {1: True, 2: False, 3: "reboot", 5: True, 6: False, 7: "reboot"}
CMD = {1: True, 2: False, 3: "reboot", 4: True, 5: False, 6: "reboot", 7: None}


def init(**context):
    pass


def variate(oid, tag, value, **context):
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    key = (context["dataFile"], int(oid[-1]))
    role = value.strip()
    Integer = SnmprecGrammar.TAG_MAP["2"]
    vidx = max(0, context["varsTotal"] - context["varsRemaining"] - 1)
    if context["setFlag"]:
        if role == "state":
            raise error.NotWritableError(name=oid, idx=vidx)
        v = context["origValue"]
        if not Integer().isSameTypeWith(v):
            raise error.WrongTypeError(name=oid, idx=vidx)
        table = CTL if role == "ctl" else CMD
        if int(v) not in table:
            raise error.WrongValueError(name=oid, idx=vidx)
        action = table[int(v)]
        if action == "reboot":
            reboots[key] = reboots.get(key, 0) + 1
            on[key] = True
        elif action is not None:
            on[key] = action
    return oid, tag, Integer(1 if on.get(key, True) else 2)


def shutdown(**context):
    pass

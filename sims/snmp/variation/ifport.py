# snmpsim variation module "ifport": a switch port whose ifAdminStatus can be set
# and whose ifOperStatus follows it, as on real gear (a shut port has no link).
#
#   1.3.6.1.2.1.2.2.1.7.N|2:ifport|admin         ifAdminStatus.N, starts up(1)
#   1.3.6.1.2.1.2.2.1.8.N|2:ifport|oper          ifOperStatus.N, link up
#   1.3.6.1.2.1.2.2.1.8.N|2:ifport|oper-nolink   ifOperStatus.N, no cable (down)
#
# SET ifAdminStatus.N to up(1), down(2) or testing(3); anything else is wrongValue,
# a non-integer wrongType. GET ifOperStatus.N is down(2) while admin is down, else
# the link state. A test may SET ifOperStatus.N (1..7) to pull or plug a cable.
# State is kept per recording (data file) and port, in memory.
from pysnmp.smi import error
from snmpsim.grammar.snmprec import SnmprecGrammar

admin = {}  # (data file, ifIndex) -> ifAdminStatus
link = {}   # (data file, ifIndex) -> ifOperStatus while admin is up


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
        v = context["origValue"]
        if not Integer().isSameTypeWith(v):
            raise error.WrongTypeError(name=oid, idx=vidx)
        v = int(v)
        if role == "admin":
            if v not in (1, 2, 3):
                raise error.WrongValueError(name=oid, idx=vidx)
            admin[key] = v
        else:
            if v not in range(1, 8):
                raise error.WrongValueError(name=oid, idx=vidx)
            link[key] = v
    if role == "admin":
        return oid, tag, Integer(admin.get(key, 1))
    if admin.get(key, 1) == 2:
        return oid, tag, Integer(2)
    return oid, tag, Integer(link.get(key, 2 if role == "oper-nolink" else 1))


def shutdown(**context):
    pass

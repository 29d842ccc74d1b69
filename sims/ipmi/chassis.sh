#!/bin/sh
# ipmi_sim chassis_control hook: the fake server's power and boot device, kept in files.
#
# lan.conf:   chassis_control "/bin/sh /path/to/chassis.sh STATE"
# ipmi_sim then runs (through popen, so a shell):
#   chassis.sh STATE get power [boot]          -> prints "power:0|1", "boot:<dev>"
#   chassis.sh STATE set power 1|0             chassis power on/off (cycle: 0, then 1 a second later)
#   chassis.sh STATE set reset 1               chassis power reset
#   chassis.sh STATE set shutdown 1            chassis power soft (ACPI graceful shutdown)
#   chassis.sh STATE set boot <dev>            Set System Boot Options, parameter 5
#   chassis.sh STATE set identify <secs> <force>
#   chassis.sh STATE check ...                 not supported (exit 1)
#
# <dev> is ipmi_sim's name for the boot device selector (bits 5:2 of boot flags byte 2):
#   none (no override), pxe, default (= force hard disk, what `bootdev disk` sends),
#   cdrom, bios. Other selectors (safe mode, floppy, ...) never reach the hook: ipmi_sim
#   answers them with an error. ipmi_sim passes NO persistence/EFI/valid flags (byte 1):
#   `bootdev pxe options=persistent,efiboot` arrives as plain "set boot pxe", and
#   `bootparam get 5` always reports "next boot only, BIOS/legacy, flags invalid".
#
# Files in STATE: power (0|1), boot (<dev>), resets (one line per reset), power.log (every call).
# Output other than "name:value" lines and a non-zero exit make ipmi_sim answer with an error.
S=$1
op=$2
shift 2
echo "$(date +%s.%N) $op $*" >> "$S/power.log"
case $op in
get)
    for p in "$@"; do
        case $p in
        power) echo "power:$(cat "$S/power" 2>/dev/null || echo 0)" ;;
        boot) echo "boot:$(cat "$S/boot" 2>/dev/null || echo none)" ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done
    ;;
set)
    while [ $# -gt 0 ]; do
        p=$1
        v=$2
        shift 2
        case $p in
        power) echo "$v" > "$S/power" ;;
        reset) echo "$(date +%s.%N) reset" >> "$S/resets" ;;
        shutdown) echo 0 > "$S/power" ;;
        boot)
            case $v in
            none | pxe | default | cdrom | bios) echo "$v" > "$S/boot" ;;
            *) echo "Invalid boot value: $v"; exit 1 ;;
            esac
            ;;
        identify) shift ;; # identify has two values: interval and force
        *) echo "Invalid parameter: $p"; exit 1 ;;
        esac
    done
    ;;
*)
    exit 1
    ;;
esac

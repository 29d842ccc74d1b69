#!/bin/sh
# ipmi_sim chassis_control hook of a virtual machine: its power IS "its qemu is alive".
#
#   lan.conf:  chassis_control "/bin/sh /path/to/chassis.sh MACHINEDIR"
#   ipmi_sim:  chassis.sh DIR get power|boot ...     -> prints power:0|1  boot:<dev>
#              chassis.sh DIR set power 1|0 | reset 1 | shutdown 1 | boot pxe|default|cdrom|bios|none
#
# Power on starts DIR/vm.sh (qemu) in the background, with the NIC first in the boot order
# when the boot device is pxe and the disk first otherwise; the override then falls back
# to "default", as a real BMC's "next boot only" does. Power off stops qemu (TERM, then
# KILL after 5 s). A guest that powers itself off is seen as off. Every call is logged to
# DIR/power.log. Reset restarts qemu (it runs with -no-reboot).
N=$1; op=$2; shift 2
H=$(dirname "$(readlink -f "$0")")
log() { echo "$(date +%s.%N) $*" >> "$N/power.log"; }
pid() { cat "$N/qemu.pid" 2>/dev/null; }
# Only a live qemu of this machine counts. A zombie has an empty cmdline, and so has a
# process in the middle of an exec (bash -> python -> qemu): an empty cmdline is asked
# again until the process is either a zombie, gone, or shows its new command line.
alive() {
  p=$(pid); [ -n "$p" ] || return 1; i=0
  while [ $i -lt 20 ]; do
    c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || return 1
    if [ -n "$c" ]; then case $c in *"$N"*) return 0;; *) return 1;; esac; fi
    s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)
    case $s in ''|Z|X) return 1;; esac
    sleep 0.05; i=$((i+1))
  done
  return 1
}
start_vm() {
  b=$(cat "$N/boot" 2>/dev/null || echo default); echo default > "$N/boot"
  case $b in pxe) m=net;; *) m=disk;; esac
  /bin/bash "$H/vm.sh" "$N" $m </dev/null >>"$N/qemu.log" 2>&1 &
  echo $! > "$N/qemu.pid"; log "started qemu pid $! boot=$m"
}
stop_vm() {
  alive || return 0; p=$(pid); kill -TERM "$p"; i=0
  while alive && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  alive && kill -KILL "$p"; log "stopped qemu pid $p"
}
case $op in
  get) for p in "$@"; do case $p in
         power) if alive; then echo power:1; else echo power:0; fi;;
         boot)  echo "boot:$(cat "$N/boot" 2>/dev/null || echo default)";;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  set) while [ $# -gt 0 ]; do p=$1; v=$2; shift 2; log "set $p $v"; case $p in
         power)    if [ "$v" = 1 ]; then alive || start_vm; else stop_vm; fi;;
         reset)    stop_vm; start_vm;;
         shutdown) stop_vm;;
         boot)     echo "$v" > "$N/boot";;
         identify) shift;;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  *) exit 1;;
esac
exit 0

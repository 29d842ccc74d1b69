#!/bin/bash
# vm.sh MACHINEDIR net|disk : execs qemu (TCG) for one virtual machine; the pid the hook
# saved stays qemu's (bash -> tapexec.py -> qemu all exec). DIR/machine.env gives NAME,
# MAC, NETNS, BRIDGE, TAP, MEM. The NIC (virtio-net with its iPXE ROM) sits on a tap in
# the test's network namespace; qemu itself stays in the root namespace. Two virtio
# disks with serials NAME-d0 and NAME-d1; console on DIR/serial.log.
N=$1; BOOT=$2; . "$N/machine.env"; H=$(dirname "$(readlink -f "$0")")
NICBOOT=; DISKBOOT=; [ "$BOOT" = net ] && NICBOOT=,bootindex=1 || DISKBOOT=,bootindex=1
exec /usr/bin/python3 "$H/tapexec.py" "$NETNS" "$BRIDGE" "$TAP" qemu-system-x86_64 -name "$N" \
  -machine pc,accel=tcg -m "$MEM" -smp 1 -nographic -serial "file:$N/serial.log" -monitor none -no-reboot \
  -netdev tap,id=n0,fd=3 -device "virtio-net-pci,netdev=n0,mac=$MAC$NICBOOT" \
  -drive "if=none,id=d0,file=$N/disk0.qcow2,format=qcow2" -device "virtio-blk-pci,drive=d0,serial=$NAME-d0$DISKBOOT" \
  -drive "if=none,id=d1,file=$N/disk1.qcow2,format=qcow2" -device "virtio-blk-pci,drive=d1,serial=$NAME-d1" \
  -smbios "type=1,manufacturer=dcim,product=virtual-machine,serial=$NAME-serial"

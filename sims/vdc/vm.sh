#!/bin/bash
# vm.sh MACHINEDIR net|disk : execs qemu (TCG) for one virtual machine; the pid the hook
# saved stays qemu's (bash -> tapexec.py -> qemu all exec). DIR/machine.env gives NAME,
# MAC, NETNS, BRIDGE, TAP, MEM and FW (bios: SeaBIOS with the NIC's iPXE ROM; uefi: OVMF
# with its own PXE, which loads iPXE over TFTP). The NIC (virtio-net) sits on a tap in
# the test's network namespace; qemu itself stays in the root namespace. Two virtio
# disks with serials NAME-d0 and NAME-d1; console on DIR/serial.log. With VM_PORT in
# machine.env, a KCS interface whose BMC is the ipmi_sim listening there (`serial 15
# 127.0.0.1 VM_PORT codec VM`): the in-band BMC the agent sets up.
N=$1; BOOT=$2; . "$N/machine.env"; H=$(dirname "$(readlink -f "$0")")
NICBOOT=; DISKBOOT=; [ "$BOOT" = net ] && NICBOOT=,bootindex=1 || DISKBOOT=,bootindex=1
if [ "${FW:-bios}" = uefi ]; then
  FWARGS=(-machine q35,accel=tcg -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
          -drive "if=pflash,format=raw,file=$N/OVMF_VARS.fd")
  NICBOOT="$NICBOOT,romfile="
else
  FWARGS=(-machine pc,accel=tcg)
fi
KCS=()
[ -n "${VM_PORT:-}" ] && KCS=(-chardev "socket,id=ipmi0,host=127.0.0.1,port=$VM_PORT,reconnect=1"
                              -device ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device isa-ipmi-kcs,bmc=bmc0)
exec /usr/bin/python3 "$H/tapexec.py" "$NETNS" "$BRIDGE" "$TAP" qemu-system-x86_64 -name "$N" \
  "${FWARGS[@]}" -m "$MEM" -smp 1 -nographic -serial "file:$N/serial.log" -monitor none -no-reboot \
  -netdev tap,id=n0,fd=3 -device "virtio-net-pci,netdev=n0,mac=$MAC$NICBOOT" \
  -drive "if=none,id=d0,file=$N/disk0.qcow2,format=qcow2" -device "virtio-blk-pci,drive=d0,serial=$NAME-d0$DISKBOOT" \
  -drive "if=none,id=d1,file=$N/disk1.qcow2,format=qcow2" -device "virtio-blk-pci,drive=d1,serial=$NAME-d1" \
  -smbios "type=1,manufacturer=dcim,product=virtual-machine,serial=$NAME-serial" "${KCS[@]}"

#!/usr/bin/python3
"""tapexec.py NETNS BRIDGE TAP CMD... : creates the tap TAP inside the network namespace
NETNS, puts it on BRIDGE there, then execs CMD in the caller's namespace with the tap open
as fd 3 (qemu: -netdev tap,id=n0,fd=3). So qemu stays in the root namespace, where it can
reach its BMC on 127.0.0.1, while its NIC is in the test's namespace. The tap is not
persistent: it goes away with qemu. exec keeps the pid."""
import ctypes, fcntl, os, struct, subprocess, sys

ns, br, tap, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x40000000, 0x400454CA, 0x0002, 0x1000
home = os.open("/proc/self/ns/net", os.O_RDONLY)
target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
if libc.setns(target, CLONE_NEWNET) != 0:
    raise OSError(ctypes.get_errno(), "setns into " + ns)
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
if libc.setns(home, CLONE_NEWNET) != 0:
    raise OSError(ctypes.get_errno(), "setns back")
os.close(home)
os.close(target)
subprocess.run(["ip", "-n", ns, "link", "set", tap, "master", br, "up"], check=True)
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.execvp(cmd[0], cmd)

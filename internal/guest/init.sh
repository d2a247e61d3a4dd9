#!/bin/busybox sh
# /init of the refuge test guest (built by internal/guest).
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for i in 1 2; do for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_console; do
  insmod /lib/modules/$m.ko 2>/dev/null; done; done
MB=32; RATE=4; VERIFY=1
for a in $(cat /proc/cmdline); do case $a in refuge.mb=*) MB=${a#*=};; refuge.rate=*) RATE=${a#*=};; refuge.verify=*) VERIFY=${a#*=};; esac; done
DISK=; [ -b /dev/vda ] && DISK=/dev/vda
BOOT=$(cat /proc/sys/kernel/random/boot_id)
echo "GUEST-UP boot=$BOOT kernel=$(uname -r) disk=${DISK:-none}"
for p in /sys/class/virtio-ports/*; do
  [ -f "$p/name" ] && [ "$(cat $p/name)" = org.qemu.guest_agent.0 ] && /guestd agent /dev/$(basename $p) &
done
/guestd memchk $MB $RATE $VERIFY $DISK &
while true; do sleep 10; echo "heartbeat boot=$BOOT uptime=$(cut -d' ' -f1 /proc/uptime)"; done

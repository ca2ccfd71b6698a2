#!/bin/sh
# /init of the cgroup v2 test VM (tests/vm). The kernel unpacks the
# initramfs into rootfs, which pivot_root(2) refuses to leave, and
# libcontainer pivots into every container's root: so the first stage
# makes the root a mount that has a parent; the second stage prepares a
# cgroup v2-only system as systemd would and runs the test.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ ! -e /.stage2 ]; then
	/bin/busybox mkdir -p /newroot /sbin /proc /sys /dev
	/bin/busybox --install -s /bin
	ln -s /bin/busybox /sbin/modprobe # the kernel's module loader
	touch /.stage2
	# A bind mount of rootfs moved over / has a parent mount, which is all
	# pivot_root needs; nothing is copied.
	mount --bind / /newroot
	cd /newroot
	mount --move . /
	exec chroot . /init
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/lib/berth
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/lib/berth # overlay's upper dirs need xattrs
# As systemd mounts it on a cgroup v2-only host.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
cgroupfs=$(awk '$2 ~ "^/sys/fs/cgroup" { print $3 }' /proc/mounts | sort -u | tr '\n' ' ')
echo "VMTEST kernel $(uname -r) cgroup ${cgroupfs% } uptime $(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /vmtest/modules); do
	modprobe "$m" || echo "VMTEST FAIL modprobe $m"
done
ip link set lo up

# Like systemd, enable the controllers it accounts by default (memory and
# pids; libcontainer must enable cpu, cpuset and io itself), and keep the
# root cgroup free of our own processes: the test runs in a leaf, and
# berth makes its own cgroups beside it.
echo "+memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/vmtest
echo $$ >/sys/fs/cgroup/vmtest/cgroup.procs

cd /vmtest
sh /vmtest/test.sh
echo "VMTEST done uptime $(cut -d' ' -f1 /proc/uptime)"
poweroff -f

#!/bin/sh
# Build, once, a stock Debian 12 guest disk image with systemd, Linux 6.12
# from bookworm-backports with its headers, and DKMS with the compiler the
# kernel was built with: what a user's Debian guest has when they install
# virtio-tmem-dkms.  tests/vm/debian-guest.py boots it.
#
# Usage: scripts/build-debian-image.sh            build if missing, print dir
#        scripts/build-debian-image.sh --print-path   print dir, build nothing
#
# Output under $VTMEM_CACHE/images/debian12-6.12/ (default cache
# /var/cache/virtio-tmem):
#   root.img   ext4 file system image (mkfs.ext4 -d, no loop device); boot it
#              with snapshot=on so that the cached image stays as built
#   vmlinuz, initrd.img   the image's own kernel and initramfs, for QEMU's
#              -kernel/-initrd (no boot loader needed)
#   KREL       the kernel release
#   harness    what the image does at boot with a test disk (see below)
#
# The image is stock Debian but for one unit, vtmem-harness.service: at the
# end of each boot, if a virtio disk with serial "vtmem-harness" is attached,
# it unpacks the tar archive on it and runs its "run" script; without that
# disk it does nothing.  Tests bring their own script that way, so the image
# never changes with them.
#
# The archive URI is the machine's own (scripts/lib/apt-archive.sh).  Exit
# status 77 when the image cannot be built here (not root, no debootstrap,
# no Debian entry, no network); building takes a few minutes and about
# 1.3 GB of disk.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/apt-archive.sh
. "$top/scripts/lib/apt-archive.sh"

suite=bookworm
kseries=6.12
cache=${VTMEM_CACHE:-/var/cache/virtio-tmem}
out=$cache/images/debian12-$kseries
size=4G

log() { echo "build-debian-image: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
die() { log "$*"; exit 1; }

# Bump when the image's contents change: a cached image of another
# version is rebuilt.
id=1
if [ "${1:-}" = "--print-path" ]; then
	echo "$out"
	exit 0
fi
if [ "$(cat "$out/.built" 2>/dev/null)" = "$id" ]; then
	echo "$out"
	exit 0
fi

[ "$(id -u)" = 0 ] || skip "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null ||
	skip "debootstrap is not installed (scripts/install-deps.sh guest)"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 (e2fsprogs) is missing"
uri=$(debian_archive_uri) || skip "no Debian archive entry in /etc/apt"

mkdir -p "$cache/images"
exec 9>"$cache/images/.lock"
flock 9
if [ "$(cat "$out/.built" 2>/dev/null)" = "$id" ]; then
	echo "$out"
	exit 0
fi

work=$(mktemp -d "$cache/images/.build.XXXXXX")
root=$work/root
cleanup() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

log "debootstrap $suite from $uri"
debootstrap --variant=minbase --include=systemd-sysv,udev,kmod \
	"$suite" "$root" "$uri" >"$work/debootstrap.log" 2>&1 || {
	tail -20 "$work/debootstrap.log" >&2
	skip "debootstrap failed (no network or archive?)"
}

cat >"$root/etc/apt/sources.list" <<EOT
deb $uri $suite main
deb $uri $suite-backports main
EOT
# No service starts in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

in_root() {
	chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
apt_in_root() {
	in_root apt-get -y -q -o Dpkg::Use-Pty=0 "$@" >>"$work/apt.log" 2>&1 || {
		tail -30 "$work/apt.log" >&2
		die "apt-get $* failed in the image"
	}
}

log "installing Linux $kseries, headers and DKMS"
apt_in_root update
# The metapackages of the backports suite name the newest 6.12 build.
apt_in_root install --no-install-recommends -t "$suite-backports" \
	linux-image-amd64 linux-headers-amd64
apt_in_root install --no-install-recommends dkms
apt_in_root clean
krel=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
case $krel in
"$kseries".*) ;;
*) die "bookworm-backports gave kernel $krel, not $kseries" ;;
esac
[ -d "$root/usr/src/linux-headers-$krel" ] || die "no headers for $krel"
rm -f "$root/usr/sbin/policy-rc.d"

log "configuring the guest"
echo vtmem-guest >"$root/etc/hostname"
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' >"$root/etc/fstab"
# No password for root on the serial console: a throwaway test guest.
in_root passwd -d root >/dev/null
mkdir -p "$root/usr/local/sbin"
cat >"$root/usr/local/sbin/vtmem-harness" <<'EOT'
#!/bin/sh
# Run a test's script from the disk with serial vtmem-harness, if any.
disk=/dev/disk/by-id/virtio-vtmem-harness
[ -b "$disk" ] || exit 0
rm -rf /run/vtmem-harness
mkdir -p /run/vtmem-harness
tar -xf "$disk" -C /run/vtmem-harness || exit 1
exec /bin/sh /run/vtmem-harness/run
EOT
chmod 755 "$root/usr/local/sbin/vtmem-harness"
cat >"$root/etc/systemd/system/vtmem-harness.service" <<'EOT'
[Unit]
Description=virtio-tmem test harness (only with a vtmem-harness disk)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vtmem-harness
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOT
in_root systemctl enable vtmem-harness.service >/dev/null 2>&1
# Nothing waits for a network that is not there.
in_root systemctl mask systemd-networkd-wait-online.service \
	apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

cp -L "$root/boot/vmlinuz-$krel" "$work/vmlinuz"
cp -L "$root/boot/initrd.img-$krel" "$work/initrd.img"
for m in dev/pts dev proc sys; do
	umount "$root/$m"
done

log "making the ext4 image"
truncate -s "$size" "$work/root.img"
mkfs.ext4 -q -F -L vtmem-root -d "$root" "$work/root.img" ||
	die "mkfs.ext4 -d failed"
echo "$krel" >"$work/KREL"
cp "$root/usr/local/sbin/vtmem-harness" "$work/harness"
rm -rf "$root"
rm -rf "$out"
mv "$work" "$out"
work=$out/.none
echo "$id" >"$out/.built"
log "built $out (Linux $krel)"
echo "$out"

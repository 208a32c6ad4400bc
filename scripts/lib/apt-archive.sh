# shellcheck shell=sh
# Sourced by the project's scripts: find the machine's own Debian archive and
# reach other suites of it without changing the host's apt configuration.
#
#   . "$top/scripts/lib/apt-archive.sh"
#   uri=$(debian_archive_uri)        the archive the machine already uses
#   rel=$(host_codename)             bookworm, trixie, ...
#   apt_extra_init DIR SUITE...      a private apt configuration in DIR that
#                                    knows only those suites (deb and
#                                    deb-src); apt-get update runs there
#   apt_extra DIR apt-cache policy X any apt-get/apt-cache command with it
#   qemu_source_apt DIR [SUITE]      DIR knows QEMU's source package
#                                    (deb-src of SUITE, default trixie)
#
# No mirror is ever named here: the URI is copied from the machine's own
# entries, deb822 (/etc/apt/sources.list.d/*.sources) or one-line
# (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list).  A private
# configuration keeps suites of another release (trixie-backports kernels on
# a bookworm host, bookworm's 6.1 on a trixie host) out of the host's own
# upgrades and dependency resolution.

APT_ETC=${APT_ETC:-/etc/apt}
APT_KEYRING=${APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
OS_RELEASE=${OS_RELEASE:-/etc/os-release}

# The URI of the machine's Debian entry for its own release (Suites: names
# the host's codename), else the first non-security "deb" URI: an entry of
# another vendor (nodesource, cloud SDKs) is not mistaken for Debian when
# its file sorts first.
debian_archive_uri() {
	_aa_rel=$(host_codename 2>/dev/null) || _aa_rel=
	for _aa_want in "$_aa_rel" ""; do
		_deb822_uri "$_aa_want" && return 0
		_oneline_uri "$_aa_want" && return 0
	done
	return 1
}

_deb822_uri() {
	for _aa_f in "$APT_ETC"/sources.list.d/*.sources; do
		[ -f "$_aa_f" ] || continue
		awk -v want="$1" 'function flush() {
			     if (deb && uri != "" && uri !~ /security/ &&
			         suites !~ /-security/ &&
			         (want == "" || (" " suites " ") ~ (" " want " ")))
			     { print uri; found = 1; exit }
			     deb = 0; uri = ""; suites = ""
		     }
		     /^[ \t]*$/ { flush(); next }
		     /^Types:/ { deb = ($0 ~ /[ \t]deb([ \t]|$)/) }
		     /^URIs:/ { uri = $2 }
		     /^Suites:/ { suites = $0; sub(/^Suites:[ \t]*/, "", suites) }
		     END { if (!found) flush() }' "$_aa_f" | head -n 1 | grep . && return 0
	done
	return 1
}

_oneline_uri() {
	for _aa_f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
		[ -f "$_aa_f" ] || continue
		# deb [options] URI SUITE COMPONENTS...
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$_aa_f" |
			awk -v want="$1" '$1 == "deb" && $2 !~ /security/ &&
			         $3 !~ /-security/ && (want == "" || $3 == want) {
			         print $2; exit }' | grep . && return 0
	done
	return 1
}

# The URI of the machine's security entry (deb.debian.org/debian-security
# or a local mirror of it), empty when it has none.
debian_security_uri() {
	for _aa_f in "$APT_ETC"/sources.list.d/*.sources; do
		[ -f "$_aa_f" ] || continue
		awk '/^URIs:/ { uri = $2 }
		     /^Suites:/ && /-security/ && uri != "" { print uri; exit }' "$_aa_f" |
			grep . && return 0
	done
	for _aa_f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
		[ -f "$_aa_f" ] || continue
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$_aa_f" |
			awk '$1 == "deb" && $3 ~ /-security/ { print $2; exit }' |
			grep . && return 0
	done
	return 1
}

# The host's release codename (bookworm, trixie, ...).
host_codename() {
	# shellcheck disable=SC1090,SC1091
	(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}") | grep . ||
		{ echo "unknown"; return 1; }
}

# The apt options that make apt-get/apt-cache use DIR alone.
apt_extra_opts() {
	d=$1
	echo "-o Dir::Etc::SourceList=$d/sources.list" \
		"-o Dir::Etc::SourceParts=$d/empty" \
		"-o Dir::Etc::Preferences=$d/empty/none" \
		"-o Dir::Etc::PreferencesParts=$d/empty" \
		"-o Dir::State=$d/state" \
		"-o Dir::State::status=$d/state/status" \
		"-o Dir::Cache=$d/cache" \
		"-o APT::Get::AllowUnauthenticated=false" \
		"-o Debug::NoLocking=true"
}

apt_extra() {
	d=$1
	shift
	cmd=$1
	shift
	# shellcheck disable=SC2046 # the options are words without blanks
	"$cmd" $(apt_extra_opts "$d") "$@"
}

# apt_extra_init DIR SUITE...: (re)write DIR's sources for the suites and
# fetch their lists, at most once a day.  Returns 1 when no Debian entry
# can be found or apt-get update fails (no network).  APT_EXTRA_TYPES=deb-src
# fetches only the source lists (enough for apt-get source).
apt_extra_init() {
	d=$1
	shift
	uri=$(debian_archive_uri) || {
		echo "apt-archive: no Debian archive entry in $APT_ETC" >&2
		return 1
	}
	mkdir -p "$d/empty" "$d/state/lists/partial" "$d/cache/archives/partial"
	: >"$d/state/status"
	new=$(for s in "$@"; do
		for t in ${APT_EXTRA_TYPES:-deb deb-src}; do
			echo "$t [signed-by=$APT_KEYRING] $uri $s main"
		done
	done)
	stamp=$d/state/updated
	if [ "$(cat "$d/sources.list" 2>/dev/null)" = "$new" ] &&
		[ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
		return 0
	fi
	printf '%s\n' "$new" >"$d/sources.list"
	apt_extra "$d" apt-get update -q >&2 || return 1
	touch "$stamp"
}

# qemu_source_apt DIR [SUITE]: a private configuration with only the
# deb-src lists of SUITE (default trixie, whose qemu is 10.0), for
# scripts/build-qemu.sh's `apt-cache showsrc qemu` and `apt-get source`.
# The host needs no deb-src entry of its own, on bookworm or trixie.
qemu_source_apt() {
	APT_EXTRA_TYPES=deb-src apt_extra_init "$1" "${2:-trixie}"
}

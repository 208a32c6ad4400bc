#!/bin/sh
# scripts/lib/apt-archive.sh finds the machine's Debian archive in deb822
# and one-line apt entries, for the host's own release, and never takes a
# security or another vendor's entry for it.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib/apt-archive.sh"

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0

expect() {
	what=$1 want=$2
	shift 2
	got=$("$@" 2>/dev/null) || got="(exit $?)"
	if [ "$got" = "$want" ]; then
		echo "ok - $what"
	else
		echo "not ok - $what: got '$got', want '$want'"
		fails=$((fails + 1))
	fi
}

etc() {
	rm -rf "$t/etc"
	mkdir -p "$t/etc/sources.list.d"
	APT_ETC=$t/etc
	printf 'VERSION_CODENAME=%s\n' "$1" >"$t/os-release"
	OS_RELEASE=$t/os-release
}

# A Debian 12 machine as this project's: deb822, security in the same
# file, another vendor's .sources sorting before debian.sources.
etc bookworm
cat >"$APT_ETC/sources.list.d/debian.sources" <<EOT
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
EOT
cat >"$APT_ETC/sources.list.d/cloud.sources" <<EOT
Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
EOT
expect "deb822: the entry for the host's release" \
	http://mirror.example/debian debian_archive_uri
expect "deb822: the security entry" \
	http://security.example/debian-security debian_security_uri
expect "host codename" bookworm host_codename

# A fresh Debian 13: "Types: deb deb-src", a deb-src-only entry first.
etc trixie
cat >"$APT_ETC/sources.list.d/debian.sources" <<EOT
Types: deb-src
URIs: http://src-only.example/debian
Suites: trixie
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
expect "deb822: a deb-src-only entry is not taken" \
	http://mirror.example/debian debian_archive_uri
expect "deb822: no security entry" "(exit 1)" debian_security_uri

# A one-line sources.list with options and comments.
etc trixie
cat >"$APT_ETC/sources.list" <<EOT
# deb http://commented.example/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://sec.example/debian-security trixie-security main
deb-src http://src.example/debian trixie main
deb [arch=amd64] http://mirror.example/debian trixie main contrib
EOT
expect "one-line: options and comments skipped" \
	http://mirror.example/debian debian_archive_uri
expect "one-line: the security entry" \
	http://sec.example/debian-security debian_security_uri

# An entry of another release only: still the archive to copy.
etc trixie
echo "deb http://old.example/debian bookworm main" >"$APT_ETC/sources.list"
expect "another release's entry when the host's is missing" \
	http://old.example/debian debian_archive_uri

# Nothing Debian at all.
etc trixie
expect "no entry: exit 1" "(exit 1)" debian_archive_uri

# The private configuration reads only its own directory.
opts=$(apt_extra_opts /x)
case $opts in
*"Dir::Etc::SourceList=/x/sources.list"*"Dir::Etc::SourceParts=/x/empty"*"Dir::State=/x/state"*)
	echo "ok - apt_extra_opts" ;;
*) echo "not ok - apt_extra_opts: $opts"; fails=$((fails + 1)) ;;
esac

[ "$fails" = 0 ]

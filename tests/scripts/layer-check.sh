#!/bin/sh
# libtmem's layering (host-lib/README.md, "Layers"), checked on the code:
#  - no call cycle between its object files: for each object of the
#    static library, the global symbols it leaves undefined are matched
#    to the object defining them, and tsort(1) must find an order;
#  - no include cycle among host-lib/src and host-lib/include;
#  - the layers below the client (alloc, codec, zs, handle, index, and
#    tier_space_i.h, what the handles see of the tier) never include the
#    client's header tmem_i.h, not even through another;
#  - no source file over 600 lines;
#  - the layer map of host-lib/README.md names every file of host-lib/src
#    and no other.
# Usage: layer-check.sh LIBTMEM.A HOST-LIB-DIR
set -eu
lib=$1
src=$2/src
inc=$2/include
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0
fail() {
	echo "not ok - $*"
	fails=$((fails + 1))
}

# --- Calls: "object symbol" for definitions and for references.
# nm -A names a member "lib.a:member.o:"; keep the source's name.
# shellcheck disable=SC2016	# awk's $1, not the shell's
obj='{ n = split($1, p, ":"); o = p[n - 1]; sub(/.*\//, "", o);
	sub(/^.*_src_/, "", o); sub(/\.o$/, "", o); print o, $NF }'
nm -A -g --defined-only "$lib" | awk "$obj" | sort -k2 >"$t/def"
nm -A -u "$lib" | awk "$obj" | sort -k2 >"$t/use"
if [ ! -s "$t/def" ]; then
	fail "no symbols read from $lib"
	exit 1
fi
# caller callee, for symbols both undefined in one object and defined in
# another of the library (libc, lz4, liburing are not in it).
join -1 2 -2 2 -o 1.1,2.1 "$t/use" "$t/def" |
	awk '$1 != $2' | sort -u >"$t/calls"
# Each object also stands alone, so that a leaf is in the order too.
awk '{ print $1, $1 }' "$t/def" | sort -u >>"$t/calls"
if tsort "$t/calls" >"$t/order" 2>"$t/loop"; then
	echo "ok - no call cycle between libtmem's objects"
	echo "# called before callers: $(tac "$t/order" | tr '\n' ' ')"
else
	fail "call cycle between libtmem's objects:"
	sed 's/^/#   /' "$t/loop"
	join -1 2 -2 2 -o 1.1,2.1,0 "$t/use" "$t/def" | awk '$1 != $2' |
		sed 's/^/#   /'
fi

# --- Includes: "file included" for every #include "...".
for f in "$src"/*.c "$src"/*.h "$inc"/*.h; do
	b=$(basename "$f")
	echo "$b $b"
	sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
		while read -r h; do
			if [ -e "$src/$h" ] || [ -e "$inc/$h" ]; then
				echo "$b $h"
			fi
		done
done >"$t/incs"
if tsort "$t/incs" >/dev/null 2>"$t/iloop"; then
	echo "ok - no include cycle in host-lib"
else
	fail "include cycle in host-lib:"
	sed 's/^/#   /' "$t/iloop"
fi

# The files each one includes, directly or not: "file reached" lines.
awk '$1 != $2 { inc[$1] = inc[$1] " " $2 }
END {
	for (f in inc) {
		n = split(inc[f], todo, " ")
		delete seen
		while (n > 0) {
			g = todo[n--]
			if (g in seen)
				continue
			seen[g] = 1
			print f, g
			m = split(inc[g], more, " ")
			for (i = 1; i <= m; i++)
				todo[++n] = more[i]
		}
	}
}' "$t/incs" >"$t/reach"
below=0
for f in alloc.c alloc_i.h codec.c codec_i.h zs.c zs_i.h tier_space_i.h \
	handle.c handle_i.h index.c index_i.h; do
	if [ ! -e "$src/$f" ]; then
		fail "$f: missing (the layer map names it)"
		below=1
	elif grep -qx "$f tmem_i.h" "$t/reach"; then
		fail "$f reaches tmem_i.h, the client layer above it"
		below=1
	fi
done
[ "$below" -eq 0 ] &&
	echo "ok - the layers below the client do not include tmem_i.h"

# --- Size.
for f in "$src"/*.c "$src"/*.h "$inc"/*.h; do
	n=$(wc -l <"$f")
	[ "$n" -le 600 ] || fail "$(basename "$f"): $n lines, over 600"
done
echo "# largest: $(wc -l "$src"/*.c "$src"/*.h "$inc"/*.h | sort -n |
	tail -n 2 | head -n 1)"

# --- The README's layer map: the table rows between "### Layers" and
# the next heading name the files in backquotes.
# shellcheck disable=SC2016	# backquotes of markdown, not the shell's
sed -n '/^### Layers$/,/^### /p' "$2/README.md" | grep '^|' |
	grep -o '`[a-z_]*\(\.c\|_i\.h\)`' | tr -d '`' | sort -u >"$t/map"
(cd "$src" && ls -- *.c *.h) | sort -u >"$t/files"
if [ ! -s "$t/map" ]; then
	fail "no layer map in $2/README.md"
elif cmp -s "$t/map" "$t/files"; then
	echo "ok - host-lib/README.md's layer map names every source file"
else
	fail "host-lib/README.md's layer map and host-lib/src differ:"
	diff "$t/map" "$t/files" | sed -n 's/^</#   only in the map:/p; s/^>/#   only in src:/p'
fi

[ "$fails" -eq 0 ]

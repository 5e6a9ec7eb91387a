#!/bin/sh
# valgrind on a short secure run: cdm-share (model and input), the three
# cdm-party processes (1 DDIM step of the bundled model, over loopback) and
# cdm-reveal, each under valgrind --leak-check=full --error-exitcode=3: no
# invalid access, no use of uninitialised memory, no definite or indirect
# leak. About 1 minute on 2 cores (3 parties under valgrind at once).
#
# valgrind 3.19 cannot decode AVX-512, which -march=native emits on such
# machines, so the tools are rebuilt for x86-64-v3 (AVX2) into build/vg/
# (incremental after the first time), and OpenBLAS is pinned to its Haswell
# kernels. CDM_SKIP_VALGRIND=1 skips this test; without valgrind it is
# skipped with a message (apt-get install valgrind).
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
if [ -n "${CDM_SKIP_VALGRIND:-}" ]; then echo "SKIP: CDM_SKIP_VALGRIND is set"; exit 0; fi
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed (apt-get install valgrind)"; exit 0; }
VB=build/vg/bin
OPTS="-O2 -march=x86-64-v3"
[ "$(uname -m)" = x86_64 ] || OPTS="-O2"
make --no-print-directory -j2 BUILD=build/vg BIN=$VB OPT="$OPTS" all >"$T/make.log" 2>&1 ||
	{ echo "FAIL: building the valgrind variant: $(grep -m3 error "$T/make.log")"; exit 1; }
export OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1
VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=3"

# vg NAME CMD...: run CMD under valgrind; exit 0 and an empty valgrind log wanted
vg() {
	local name=$1
	shift
	$VG --log-file="$T/$name.vg" "$@" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	[ $rc = 0 ] || bad "$name: exit $rc: $(head -c 300 "$T/$name.err") $(head -c 1500 "$T/$name.vg")"
	[ -s "$T/$name.vg" ] && bad "$name: valgrind reports: $(head -c 1500 "$T/$name.vg")"
}

vg share-model $VB/cdm-share -o "$T/m" $M
vg share-input $VB/cdm-share -o "$T/x" --input --label 2 --seed 9 $M
start=$(now_s)
port=$(free_ports 3)
for i in 0 1 2; do
	($VG --log-file="$T/party$i.vg" $VB/cdm-party --id $i --peers "$(peers_list $port)" \
		--model "$T/m.$i" --input "$T/x.$i" -o "$T/o.$i" --steps 1 --timeout 150 -q \
		2>"$T/party$i.err"; echo $? >"$T/party$i.rc") &
	PIDS="$PIDS $!"
done
for p in $PIDS; do wait $p; done
PIDS=""
for i in 0 1 2; do
	[ "$(cat "$T/party$i.rc" 2>/dev/null)" = 0 ] ||
		bad "party $i: exit $(cat "$T/party$i.rc" 2>/dev/null): $(head -c 300 "$T/party$i.err")"
	[ -s "$T/party$i.vg" ] && bad "party $i: valgrind reports: $(head -c 1500 "$T/party$i.vg")"
done
echo "three parties under valgrind: $(( $(now_s) - start )) s"
vg reveal $VB/cdm-reveal -o "$T/img.png" "$T/o.0" "$T/o.2"
# an error path too: a truncated share, refused without leaking
head -c 1000 "$T/m.1" >"$T/cut.1"
$VG --log-file="$T/refuse.vg" $VB/cdm-reveal -o "$T/r.png" "$T/o.0" "$T/cut.1" 2>"$T/refuse.err"
rc=$?
[ $rc = 1 ] || bad "refusal under valgrind: exit $rc: $(cat "$T/refuse.err")"
[ -s "$T/refuse.vg" ] && bad "refusal: valgrind reports: $(head -c 1500 "$T/refuse.vg")"

finish "valgrind: share, three parties, reveal"

#!/bin/sh
# Run the libFuzzer targets in tests/fuzz/ (clang, -fsanitize=fuzzer,address,
# undefined) for SECONDS each (default 60).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET: st, json, share, ...
# The library is built into build-fuzz/ with the top Makefile. Each target
# starts from tests/fuzz/corpus/<target>/ and keeps what it finds in
# build-fuzz/corpus/<target>/ (the committed seeds stay small); crashes land in
# build-fuzz/crash-<target>-*. Copy a crasher into the committed corpus once
# it is fixed, so `make check` replays it. Prints the runs per target.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null || { echo "fuzz.sh: $CLANG not found (apt-get install clang)" >&2; exit 1; }
B=build-fuzz
make --no-print-directory -j2 CC="$CLANG" BUILD=$B BIN=bin-fuzz \
	SANITIZE=fuzzer-no-link,address,undefined $B/libcdm.a >$B.log 2>&1 ||
	{ echo "fuzz.sh: library build failed, see $B.log" >&2; exit 1; }
status=0
for t in $targets; do
	src=tests/fuzz/fuzz_$t.c
	[ -f "$src" ] || { echo "fuzz.sh: no $src" >&2; status=1; continue; }
	$CLANG -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Ilib "$src" $B/libcdm.a -lssl -lcrypto -lzstd -lpng -ljansson -lopenblas -lm \
		-pthread -o $B/fuzz_$t
	mkdir -p $B/corpus/$t
	log=$B/fuzz_$t.log
	if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	   $B/fuzz_$t -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=$B/crash-$t- \
		$B/corpus/$t tests/fuzz/corpus/$t >$log 2>&1; then
		echo "fuzz $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' $log | grep -o '[0-9]*$') runs in ${secs}s, corpus $(ls $B/corpus/$t | wc -l) files, no crash"
	else
		status=1
		echo "fuzz $t: FAILED, see $log and $B/crash-$t-*"
		grep -m3 -E 'ERROR|SUMMARY|runtime error' $log | sed 's/^/    /'
	fi
done
exit $status

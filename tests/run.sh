#!/bin/sh
# Run every test: unit tests (plain and ASan+UBSan builds), CLI scripts and
# the fuzz corpus replay. Prints one line per test and closes with
# "N passed, N failed". Exit 1 if anything failed.
# SKIP_ASAN=1 skips the sanitizer build; ONLY=pattern runs matching tests;
# every CLI test also runs with the sanitizer tools (ASAN_CLI=min: only the
# hostile-input and failing-peer ones).
cd "$(dirname "$0")/.." || exit 1
pass=0; fail=0; failed=""
log_dir=build/test-logs; mkdir -p $log_dir
run() { # name command...
	name=$1; shift
	case "$name" in *${ONLY:-}*) ;; *) return ;; esac
	start=$(date +%s)
	if "$@" >"$log_dir/$(echo "$name" | tr '/ ' '__').log" 2>&1; then
		pass=$((pass + 1)); echo "ok   $name ($(( $(date +%s) - start ))s)"
	else
		fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL $name (log: $log_dir/$(echo "$name" | tr '/ ' '__').log)"
		tail -n 15 "$log_dir/$(echo "$name" | tr '/ ' '__').log" | sed 's/^/     /'
	fi
}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
for t in build/tests/test_*; do [ -x "$t" ] && run "unit/$(basename $t)" "$t"; done
if [ -z "${SKIP_ASAN:-}" ]; then
	for t in build-asan/tests/test_*; do [ -x "$t" ] && run "asan/$(basename $t)" "$t"; done
fi
for f in build/fuzz/*-replay; do
	[ -x "$f" ] || continue
	n=$(basename "$f" -replay)
	run "fuzz/$n" "$f" tests/fuzz/corpus/${n#fuzz_}
	[ -z "${SKIP_ASAN:-}" ] && [ -x "build-asan/fuzz/$n-replay" ] &&
		run "asan-fuzz/$n" "build-asan/fuzz/$n-replay" tests/fuzz/corpus/${n#fuzz_}
done
# tests/cli/lib.sh run directly checks its own helpers
for s in tests/cli/*.sh; do [ -f "$s" ] && run "cli/$(basename $s .sh)" sh "$s"; done
# The ASan+UBSan tools on every CLI test as well (about 7 minutes on 2
# cores); ASAN_CLI=min limits that to the hostile-input and failing-peer
# tests (the parsers and the network paths) for a quicker run.
if [ -z "${SKIP_ASAN:-}" ] && [ -x bin-asan/cdm-party ]; then
	for s in tests/cli/*.sh; do
		n=$(basename "$s" .sh)
		case "$n" in lib) continue ;; esac
		case "${ASAN_CLI:-all}:$n" in all:*|*:hostile_*|*:peers_fake|*:peers_view) ;; *) continue ;; esac
		run "asan-cli/$n" env BIN=bin-asan sh "$s"
	done
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

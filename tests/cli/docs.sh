#!/bin/sh
# What the tools say they take is what their man pages and completions
# describe: every long option in each tool's --help appears in man/TOOL.1,
# completions/cdm.bash and completions/_cdm; the bash completion file
# parses (bash -n) and completes the options and the cdm-bench subcommands.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-unet-step cdm-reveal cdm-bench; do
	[ -f man/$t.1 ] || { bad "man/$t.1 missing"; continue; }
	$B/$t --help >"$T/help" 2>&1
	opts=$(grep -oE -- '--[a-z][a-z0-9-]+' "$T/help" | sort -u)
	[ -n "$opts" ] || bad "$t --help lists no options"
	sed 's/\\//g' man/$t.1 >"$T/man"
	for o in $opts; do
		grep -q -- "$o\\b" "$T/man" || bad "$t $o: not in man/$t.1"
		grep -q -- "$o\\b" completions/cdm.bash || bad "$t $o: not in completions/cdm.bash"
		grep -q -- "$o\\b" completions/_cdm || bad "$t $o: not in completions/_cdm"
	done
done
if command -v bash >/dev/null; then
	bash -n completions/cdm.bash || bad "completions/cdm.bash does not parse"
	got=$(bash -c '. completions/cdm.bash
		COMP_WORDS=(cdm-bench ""); COMP_CWORD=1; _cdm_complete; echo "${COMPREPLY[*]}"
		COMP_WORDS=(cdm-party --sam); COMP_CWORD=1; _cdm_complete; echo "${COMPREPLY[*]}"
		COMP_WORDS=(cdm-party --sampler ""); COMP_CWORD=2; _cdm_complete; echo "${COMPREPLY[*]}"')
	[ "$got" = "$(printf 'ops gemm model sd -h --help\n--sampler\nddpm ddim dpmpp')" ] ||
		bad "bash completion gives: $got"
fi
finish "docs"

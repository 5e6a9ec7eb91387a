# bash completion for the cipherdm tools (cdm-share, cdm-party, cdm-reveal,
# cdm-unet-step, cdm-bench). Install as .../bash-completion/completions/cdm
# and link the tool names to it, or source it from ~/.bashrc.
# tests/cli/docs.sh checks that every long option of every tool's --help is
# listed here.

# Options of each tool (and of each cdm-bench subcommand).
_cdm_opts() {
	case "$1" in
	cdm-share) echo "-o --output --input --label --prompt --negative-prompt --batch --seed --dump-noise --noise
		--frac-bits --zstd -q --quiet -h --help" ;;
	cdm-party) echo "-i --id -p --peers -m --model -x --input -o --output --sampler --steps
		--eta --protocols --tls-cert --tls-key --tls-ca --timeout --stats --checkpoint
		--checkpoint-every --resume --keep-checkpoints --public-model --guidance --threads
		-q --quiet -h --help" ;;
	cdm-reveal) echo "-o --output --psnr --summary -q --quiet -h --help" ;;
	cdm-unet-step) echo "-m --model -t --timestep --label --context --guidance --sampler --steps --eta
		--noise --eps --timesteps --vae-decode --text-encode --tokenize -o --output
		-q --quiet -h --help" ;;
	cdm-bench:ops) echo "--n --cols --reps --protocols --ops --threads --json -h --help" ;;
	cdm-bench:gemm) echo "--threads --json -h --help" ;;
	cdm-bench:model) echo "-m --model --sampler --steps --protocols --batch --net --runs
		--label --seed --keep --no-plain --timeout --threads --json -q --quiet -h --help" ;;
	cdm-bench:sd) echo "--estimate --resolution --net --protocols --max-elems --json
		-q --quiet -h --help" ;;
	cdm-bench:*) echo "ops gemm model sd -h --help" ;;
	esac
}

_cdm_complete() {
	local cur prev tool
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	tool=${COMP_WORDS[0]##*/}
	case "$prev" in
	--sampler) COMPREPLY=($(compgen -W "ddpm ddim dpmpp" -- "$cur")); return ;;
	--protocols) COMPREPLY=($(compgen -W "cdm spu cipherdm cdm,spu cdm,spu,cipherdm" -- "$cur")); return ;;
	--net) COMPREPLY=($(compgen -W "loopback lan wan" -- "$cur")); return ;;
	--resolution) COMPREPLY=($(compgen -W "256 512" -- "$cur")); return ;;
	--ops) COMPREPLY=($(compgen -W "mul trunc mul_trunc lt select relu max exp reciprocal
		rsqrt sigmoid tanh silu gelu mish softplus softmax groupnorm" -- "$cur")); return ;;
	-i|--id) COMPREPLY=($(compgen -W "0 1 2" -- "$cur")); return ;;
	--public-model|--checkpoint|--keep) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	-m|--model)
		if [ "$tool" = cdm-party ]; then COMPREPLY=($(compgen -f -- "$cur"))
		else COMPREPLY=($(compgen -d -- "$cur")); fi
		return ;;
	-o|--output|-x|--input|--noise|--dump-noise|--stats|--tls-cert|--tls-key|--tls-ca|--context|--psnr)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	-t|--timestep|--label|--batch|--seed|--frac-bits|--zstd|--steps|--eta|--timeout|\
	--checkpoint-every|-p|--peers|--n|--reps|--runs|--max-elems|--threads|--guidance|--prompt|\
	--negative-prompt)
		return ;; # a value the user types
	esac
	local key=$tool
	[ "$tool" = cdm-bench ] && key=cdm-bench:${COMP_WORDS[1]}
	[ "$tool" = cdm-bench ] && [ "$COMP_CWORD" = 1 ] && key=cdm-bench:
	if [[ "$cur" == -* || "$key" == cdm-bench: ]]; then
		COMPREPLY=($(compgen -W "$(_cdm_opts "$key")" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _cdm_complete cdm-share cdm-party cdm-reveal cdm-unet-step cdm-bench

# bash completion for the cipherdm tools (cdm-share, cdm-party, cdm-reveal,
# cdm-unet-step, cdm-bench). Install as .../bash-completion/completions/cdm
# and link the tool names to it, or source it from ~/.bashrc.
_cdm_complete() {
	local cur prev words
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case "$prev" in
	--sampler) COMPREPLY=($(compgen -W "ddpm ddim dpmpp" -- "$cur")); return ;;
	--protocols) COMPREPLY=($(compgen -W "cdm spu cipherdm cdm,spu cdm,spu,cipherdm" -- "$cur")); return ;;
	--net) COMPREPLY=($(compgen -W "loopback lan wan" -- "$cur")); return ;;
	--id) COMPREPLY=($(compgen -W "0 1 2" -- "$cur")); return ;;
	-m|--model-dir|--public-model) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	-o|--model|--input|--noise|--stats|--tls-cert|--tls-key|--tls-ca|--context|--psnr)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--checkpoint) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	esac
	local opts
	case "${COMP_WORDS[0]##*/}" in
	cdm-share) opts="-o --input --label --seed --noise --batch --dump-noise --frac-bits --zstd -q --help" ;;
	cdm-party) opts="--id --peers --model --input -o --sampler --steps --eta --protocols --tls-cert --tls-key --tls-ca --timeout --stats --checkpoint --checkpoint-every --resume --keep-checkpoints --public-model -q --help" ;;
	cdm-reveal) opts="-o --psnr --summary -q --help" ;;
	cdm-unet-step) opts="-m -t -o --label --sampler --steps --eta --noise --eps --timesteps --context --vae-decode --text-encode --help" ;;
	cdm-bench)
		if [ "$COMP_CWORD" = 1 ]; then
			COMPREPLY=($(compgen -W "ops gemm model" -- "$cur")); return
		fi
		opts="--n --ops --protocols --json -m --sampler --steps --batch --net --help" ;;
	esac
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _cdm_complete cdm-share cdm-party cdm-reveal cdm-unet-step cdm-bench

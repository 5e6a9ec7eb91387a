#!/bin/sh
# The bundled text-to-image model share/models/sd-digits, from a prompt,
# securely: cdm-share of the pipeline and of the prompt "the number 4"
# (x_T from a seed), three cdm-party processes over TCP (DDIM 10 steps,
# guidance 4: secure text encoder, guided UNet loop, VAE decoder), and the
# plaintext loop of cdm-unet-step (tokenize, text-encode, guided steps,
# vae-decode) from the same x_T. Asserts: the secure image is within
# PSNR >= 35 dB of the plaintext one (the SD issue's target), and the
# independent digit classifier reads both as a 4 (the prompt is followed,
# on shares as in plaintext).
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
SD=share/models/sd-digits
C=${BUILD:-build}/tools/classify
[ -f $SD/model_index.json ] || { echo "FAIL: $SD missing"; exit 1; }
[ -x "$C" ] || { echo "FAIL: $C not built (make tests)"; exit 1; }
PROMPT="the number 4" STEPS=10 G=4

$B/cdm-share -o "$T/m" $SD >/dev/null || bad "cdm-share $SD"
$B/cdm-share -o "$T/in" --input --prompt "$PROMPT" --seed 3 --dump-noise "$T/xT" $SD ||
	bad "cdm-share --prompt"
port=$(free_ports 3)
for i in 0 1 2; do
	party_bg $i $port "$T/m.$i" "$T/in.$i" "$T/out.$i" "$T/err.$i" --steps $STEPS --guidance $G \
		--timeout 60
done
trio_ok "secure sd-digits" "$T/err"
$B/cdm-reveal -o "$T/secure" "$T/out.0" "$T/out.2" || bad "cdm-reveal"

# plaintext: the same pipeline as a shell loop
$B/cdm-unet-step --tokenize -m $SD "" "$PROMPT" -o "$T/ids" &&
	$B/cdm-unet-step --text-encode -m $SD -o "$T/ctx" "$T/ids" || bad "tokenize / text-encode"
cp "$T/xT" "$T/x"
for t in $($B/cdm-unet-step -m $SD --steps $STEPS --timesteps); do
	$B/cdm-unet-step -m $SD -t $t --steps $STEPS --context "$T/ctx" --guidance $G \
		-o "$T/next" "$T/x" && mv "$T/next" "$T/x" || { bad "step t=$t"; break; }
done
$B/cdm-unet-step --vae-decode -m $SD -o "$T/plain" "$T/x" || bad "vae-decode"

psnr=$($B/cdm-reveal --psnr "$T/plain" "$T/secure" | sed -n 's/.*psnr_db=\([0-9.inf]*\).*/\1/p' | sed 's/^inf$/999/')
[ -n "$psnr" ] || { bad "cdm-reveal --psnr printed no psnr_db"; psnr=0; }
echo "sd-digits \"$PROMPT\", DDIM $STEPS, guidance $G: secure vs plaintext $psnr dB"
awk -v p="$psnr" 'BEGIN { exit !(p >= 35) }' || bad "PSNR $psnr dB < 35"
got=$($C share/models/mnist-classifier "$T/plain" "$T/secure" | tr '\n' ' ')
[ "$got" = "4 4 " ] || bad "classifier reads plaintext / secure as: $got (prompt: 4)"
finish "sd-digits from a prompt"

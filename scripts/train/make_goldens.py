#!/usr/bin/python3
"""Write the golden UNet2DModel cases under tests/golden/<case>/.

    /usr/bin/python3 scripts/train/make_goldens.py [OUTDIR]   (default tests/golden)

Each case folder holds
  config.json                          diffusers UNet2DModel config (only the keys
                                       listed below; missing keys = diffusers defaults)
  diffusion_pytorch_model.safetensors  random F32 weights (seeded, deterministic)
  io.safetensors                       x [B,C,H,W] F32, t [B] I64, labels [B] I64
                                       (class-conditional cases only), eps [B,Cout,H,W]
                                       F32 = the model output computed in float64
                                       from the same F32 weights and inputs, then
                                       rounded to F32.
The configurations are deliberately NOT those of the bundled models.  The
float32 torch forward is compared with the float64 reference and the relative
errors are printed (they show what a correct float32 C forward can reach).

Needs torch to generate; checking the goldens (C side) does not.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet2d import UNet2DModel, save_model, save_safetensors  # noqa: E402

torch.set_num_threads(2)

# name: (config keys, batch, sample size, timestep, labels, legacy names, seed)
CASES = {
    # (a) attention_head_dim 3 with C=8 -> 2 heads, inner 6; groups 2; L 2
    "a_headdim3": (dict(in_channels=3, out_channels=3, block_out_channels=[4, 8], layers_per_block=2,
                        down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                        up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                        norm_num_groups=2, attention_head_dim=3, sample_size=16),
                   1, 16, 999, None, False, 1),
    # (b) attention_head_dim null -> one head of dim C, attention in every block
    "b_headnull": (dict(in_channels=2, out_channels=2, block_out_channels=[8, 10], layers_per_block=1,
                        down_block_types=["AttnDownBlock2D", "AttnDownBlock2D"],
                        up_block_types=["AttnUpBlock2D", "AttnUpBlock2D"],
                        norm_num_groups=2, attention_head_dim=None, sample_size=8),
                   1, 8, 500, None, False, 2),
    # (c) ddpm-cifar10-32 quirks: padding 0, flip false, freq_shift 1, eps 1e-6
    "c_cifarstyle": (dict(in_channels=3, out_channels=3, block_out_channels=[8, 12, 12], layers_per_block=1,
                          down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
                          up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
                          downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
                          norm_num_groups=4, attention_head_dim=None, sample_size=16),
                     1, 16, 737, None, False, 3),
    # (d) legacy attention names query/key/value/proj_attn
    "d_legacy": (dict(in_channels=1, out_channels=1, block_out_channels=[8, 12], layers_per_block=1,
                      down_block_types=["AttnDownBlock2D", "AttnDownBlock2D"],
                      up_block_types=["AttnUpBlock2D", "AttnUpBlock2D"],
                      norm_num_groups=4, attention_head_dim=4, sample_size=8),
                 1, 8, 120, None, True, 4),
    # (e) scale_shift: time_emb_proj -> 2C; mid attention without group_norm
    "e_scaleshift": (dict(in_channels=3, out_channels=3, block_out_channels=[8, 12], layers_per_block=1,
                          down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                          up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                          resnet_time_scale_shift="scale_shift",
                          norm_num_groups=4, attention_head_dim=8, sample_size=8),
                     1, 8, 301, None, False, 5),
    # (f) class embeddings, batch 2 with different labels
    "f_classes": (dict(in_channels=1, out_channels=1, block_out_channels=[8, 12], layers_per_block=1,
                       down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                       up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                       norm_num_groups=2, attention_head_dim=None, num_class_embeds=10, sample_size=12),
                  2, 12, 640, [3, 7], False, 6),
    # (g) resnet down/upsamplers (only Attn blocks honour them), no mid attention, mish
    "g_resnetmish": (dict(in_channels=1, out_channels=1, block_out_channels=[8, 12, 12], layers_per_block=1,
                          down_block_types=["AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                          up_block_types=["AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"],
                          downsample_type="resnet", upsample_type="resnet", add_attention=False,
                          act_fn="mish", norm_num_groups=4, attention_head_dim=4, sample_size=16),
                     1, 16, 45, None, False, 7),
    # (h) center_input_sample + gelu
    "h_centergelu": (dict(in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
                          down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                          up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                          center_input_sample=True, act_fn="gelu",
                          norm_num_groups=2, attention_head_dim=2, sample_size=8),
                     1, 8, 10, None, False, 8),
    # (i) odd sinusoid dim (boc[0]=9, zero-padded), time_embedding_dim, mid_block_scale_factor,
    #     attn_norm_num_groups, relu, unknown keys ignored
    "i_misc": (dict(in_channels=2, out_channels=1, block_out_channels=[9, 12], layers_per_block=1,
                    down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                    up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                    time_embedding_dim=20, mid_block_scale_factor=1.4142135623730951,
                    attn_norm_num_groups=1, act_fn="relu", norm_num_groups=3, attention_head_dim=5,
                    sample_size=8, some_future_key=[1, 2], _name_or_path="golden/i"),
               1, 8, 999, None, False, 9),
    # (j) no mid block, swish, batch 3, timestep 0
    "j_nomid": (dict(in_channels=1, out_channels=2, block_out_channels=[4, 8], layers_per_block=1,
                     down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                     up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                     mid_block_type=None, act_fn="swish", norm_num_groups=2, attention_head_dim=None,
                     sample_size=8),
                3, 8, 0, None, False, 10),
}


def randomize(model, gen):
    """Non-default random weights so every path matters: norm affine params
    and biases are random too, weights keep torch's fan-in scaling."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and "embedding.weight" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / fan_in) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen))


def rel_errors(a, ref):
    d = (a - ref).abs()
    return (d.max() / ref.abs().max()).item(), (d.pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()


def make_case(outdir, name, spec):
    cfg, b, hw, t, labels, legacy, seed = spec
    gen = torch.Generator().manual_seed(1000 + seed)
    m = UNet2DModel(cfg).eval()
    randomize(m, gen)
    folder = os.path.join(outdir, name)
    save_model(folder, m, cfg, legacy=legacy, scheduler=False)

    cin = m.config["in_channels"]
    x = torch.randn((b, cin, hw, hw), generator=gen)
    if m.config["center_input_sample"]:
        x = torch.rand((b, cin, hw, hw), generator=gen)
    tt = torch.full((b,), t, dtype=torch.int64)
    lab = torch.tensor(labels, dtype=torch.int64) if labels is not None else None
    with torch.no_grad():
        e32 = m(x, tt, lab)
        m64 = m.double()
        e64 = m64(x.double(), tt, lab)
        # sensitivity: the output must depend on t (and on labels) non-trivially
        e64_t = m64(x.double(), tt + 7, lab)
    io = {"x": x, "t": tt, "eps": e64.float()}
    if lab is not None:
        io["labels"] = lab
    save_safetensors(os.path.join(folder, "io.safetensors"), io)
    mx, rms = rel_errors(e32.double(), e64)
    dt = rel_errors(e64_t, e64)[1]
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print("%-14s params %6d  eps std %.3f  f32-vs-f64 rel max %.2e rms %.2e  t+7 changes %.1e  %d bytes"
          % (name, sum(p.numel() for p in m.parameters()), e64.std().item(), mx, rms, dt, size))
    return dict(case=name, max_rel=mx, rms_rel=rms)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "golden")
    os.makedirs(outdir, exist_ok=True)
    stats = [make_case(outdir, n, s) for n, s in CASES.items()]
    with open(os.path.join(outdir, "f32_errors.json"), "w") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

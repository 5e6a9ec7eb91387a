"""A diffusers-compatible UNet2DModel in plain PyTorch, plus a safetensors I/O.

Owns: the torch reference of UNet2DModel.forward used to train the bundled
models and to compute the golden files (../../tests/golden).  The module tree
is built so that `state_dict()` keys are exactly diffusers' names
(conv_in.weight, time_embedding.linear_1.weight,
down_blocks.0.resnets.0.norm1.weight, down_blocks.1.attentions.0.to_q.weight,
...to_out.0.weight, mid_block..., up_blocks..., conv_norm_out, conv_out), so
the files written here load in diffusers and in cipherdm's C loader.

Semantics follow /work/shared/reference/diffusers.md section 2:
  * act_fn (silu/swish/mish/gelu/relu) is used only inside ResnetBlock2D
    (both on the features and on temb before time_emb_proj); the time MLP and
    the output head always use SiLU, as diffusers' UNet2DModel does.
  * attention_head_dim is channels per head; heads = C // attention_head_dim;
    inner_dim = heads * attention_head_dim may differ from C; null = one head.
  * the mid-block attention has no group_norm when resnet_time_scale_shift is
    "scale_shift" and attn_norm_num_groups is null.
  * downsample_padding 0 pads right/bottom by one before a pad-0 stride-2 conv.
  * downsample_type/upsample_type only affect AttnDownBlock2D/AttnUpBlock2D.
Not supported (refused with ValueError naming the key): fourier/learned time
embeddings, class_embed_type other than null, block types other than the five
listed below, "spatial" time scale shift.

Everything works in whatever dtype the module is cast to (float32 for
training, float64 for golden references).  No global state; not thread-safe
beyond what torch itself offers.

No diffusers import: this file is written from the spec, not copied.
"""

import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

# diffusers' UNet2DModel.__init__ defaults (reference/diffusers.md 2.1)
DEFAULTS = {
    "sample_size": None,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
    "num_train_timesteps": None,
}

DDPM_SCHEDULER = {
    "_class_name": "DDPMScheduler",
    "_diffusers_version": "0.27.0",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "num_train_timesteps": 1000,
    "clip_sample": True,
    "prediction_type": "epsilon",
    "variance_type": "fixed_small",
    "trained_betas": None,
}


def full_config(cfg):
    """Diffusers semantics: keys starting with '_' and unknown keys are ignored,
    missing keys take the __init__ default, JSON null is None."""
    out = dict(DEFAULTS)
    for k, v in cfg.items():
        if k.startswith("_") or k not in DEFAULTS:
            continue
        out[k] = v
    return out


def make_act(name):
    table = {"silu": nn.SiLU, "swish": nn.SiLU, "mish": nn.Mish, "gelu": nn.GELU, "relu": nn.ReLU}
    if name not in table:
        raise ValueError("act_fn %r is not supported" % (name,))
    return table[name]()


def timestep_sinusoid(t, dim, flip_sin_to_cos, freq_shift, dtype):
    """get_timestep_embedding with scale 1 and max_period 10000, computed in
    `dtype` (float32 as in diffusers, or float64 for an exact reference)."""
    half = dim // 2
    i = torch.arange(half, dtype=dtype)
    freqs = torch.exp(-math.log(10000.0) * i / (half - freq_shift))
    arg = t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.linear_1 = nn.Linear(din, dout)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dout, dout)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class Downsample2D(nn.Module):
    """3x3 stride-2 conv under `.conv`; padding 0 means pad right/bottom by 1."""

    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, eps, groups, act, scale_shift, osf=1.0, up=False, down=False):
        super().__init__()
        self.scale_shift = scale_shift
        self.osf = osf
        self.up, self.down = up, down
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nonlinearity = make_act(act)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)
        else:
            self.conv_shortcut = None

    def _resample(self, x):
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2, 2)
        return x

    def forward(self, x, temb):
        h = self.nonlinearity(self.norm1(x))
        # up/down variants resample both paths right after the first activation
        x = self._resample(x)
        h = self.conv1(self._resample(h))
        t = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = torch.chunk(t, 2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + t)
        h = self.conv2(self.dropout(self.nonlinearity(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.osf


class Attention(nn.Module):
    """Spatial self-attention with optional group_norm, residual, rescale."""

    def __init__(self, ch, head_dim, eps, groups, rescale=1.0):
        super().__init__()
        self.heads = ch // head_dim
        if self.heads < 1:
            raise ValueError("attention_head_dim %d exceeds the %d channels of an attention block" % (head_dim, ch))
        self.dh = head_dim
        inner = self.heads * head_dim
        self.rescale = rescale
        self.group_norm = nn.GroupNorm(groups, ch, eps=eps) if groups is not None else None
        self.to_q = nn.Linear(ch, inner)
        self.to_k = nn.Linear(ch, inner)
        self.to_v = nn.Linear(ch, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, ch), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, hh, ww = x.shape
        r = x
        if self.group_norm is not None:
            x = self.group_norm(x)
        s = x.reshape(b, c, hh * ww).transpose(1, 2)  # (B, N, C), token n = y*W + x

        def heads(m):
            return m.reshape(b, hh * ww, self.heads, self.dh).transpose(1, 2)

        q, k, v = heads(self.to_q(s)), heads(self.to_k(s)), heads(self.to_v(s))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (self.dh ** -0.5)
        o = torch.matmul(torch.softmax(scores, dim=-1), v)
        o = o.transpose(1, 2).reshape(b, hh * ww, self.heads * self.dh)
        o = self.to_out[1](self.to_out[0](o))
        o = o.transpose(1, 2).reshape(b, c, hh, ww)
        return (o + r) / self.rescale


class DownBlock(nn.Module):
    """DownBlock2D (attn=False) or AttnDownBlock2D (attn=True)."""

    def __init__(self, cin, cout, n, temb, c, attn, last, head_dim):
        super().__init__()
        ss = c["resnet_time_scale_shift"] == "scale_shift"
        eps, g, act = c["norm_eps"], c["norm_num_groups"], c["act_fn"]
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if j == 0 else cout, cout, temb, eps, g, act, ss) for j in range(n)])
        if attn:
            self.attentions = nn.ModuleList([Attention(cout, head_dim, eps, g) for _ in range(n)])
        else:
            self.attentions = None
        self.resnet_down = attn and c["downsample_type"] == "resnet"
        if last:
            self.downsamplers = None
        elif self.resnet_down:
            self.downsamplers = nn.ModuleList([ResnetBlock2D(cout, cout, temb, eps, g, act, ss, down=True)])
        else:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, c["downsample_padding"])])

    def forward(self, h, temb):
        out = []
        for j, res in enumerate(self.resnets):
            h = res(h, temb)
            if self.attentions is not None:
                h = self.attentions[j](h)
            out.append(h)
        if self.downsamplers is not None:
            d = self.downsamplers[0]
            h = d(h, temb) if self.resnet_down else d(h)
            out.append(h)
        return h, out


class UpBlock(nn.Module):
    """UpBlock2D (attn=False) or AttnUpBlock2D (attn=True); n = L+1 resnets."""

    def __init__(self, cin, cout, prev, n, temb, c, attn, last, head_dim):
        super().__init__()
        ss = c["resnet_time_scale_shift"] == "scale_shift"
        eps, g, act = c["norm_eps"], c["norm_num_groups"], c["act_fn"]
        res = []
        for j in range(n):
            skip = cin if j == n - 1 else cout
            rin = prev if j == 0 else cout
            res.append(ResnetBlock2D(rin + skip, cout, temb, eps, g, act, ss))
        self.resnets = nn.ModuleList(res)
        if attn:
            self.attentions = nn.ModuleList([Attention(cout, head_dim, eps, g) for _ in range(n)])
        else:
            self.attentions = None
        self.resnet_up = attn and c["upsample_type"] == "resnet"
        if last:
            self.upsamplers = None
        elif self.resnet_up:
            self.upsamplers = nn.ModuleList([ResnetBlock2D(cout, cout, temb, eps, g, act, ss, up=True)])
        else:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, h, skips, temb):
        for j, res in enumerate(self.resnets):
            h = torch.cat([h, skips.pop()], dim=1)  # current features first
            h = res(h, temb)
            if self.attentions is not None:
                h = self.attentions[j](h)
        if self.upsamplers is not None:
            u = self.upsamplers[0]
            h = u(h, temb) if self.resnet_up else u(h)
        return h


class MidBlock(nn.Module):
    def __init__(self, ch, temb, c):
        super().__init__()
        ss = c["resnet_time_scale_shift"] == "scale_shift"
        eps, g, act = c["norm_eps"], c["norm_num_groups"], c["act_fn"]
        osf = float(c["mid_block_scale_factor"])
        ag = c["attn_norm_num_groups"]
        if ag is None and not ss:
            ag = g
        hd = c["attention_head_dim"] if c["attention_head_dim"] is not None else ch
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, eps, g, act, ss, osf) for _ in range(2)])
        if c["add_attention"]:
            self.attentions = nn.ModuleList([Attention(ch, hd, eps, ag, rescale=osf)])
        else:
            self.attentions = None

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h, temb)


def check_config(c):
    def bad(key, why):
        raise ValueError("config key %s: %s" % (key, why))

    if c["time_embedding_type"] != "positional":
        bad("time_embedding_type", "%r is not supported (only positional)" % (c["time_embedding_type"],))
    if c["class_embed_type"] is not None:
        bad("class_embed_type", "%r is not supported (only null)" % (c["class_embed_type"],))
    if c["resnet_time_scale_shift"] not in ("default", "scale_shift"):
        bad("resnet_time_scale_shift", "%r is not supported" % (c["resnet_time_scale_shift"],))
    if c["mid_block_type"] not in ("UNetMidBlock2D", None):
        bad("mid_block_type", "%r is not supported" % (c["mid_block_type"],))
    n = len(c["block_out_channels"])
    if len(c["down_block_types"]) != n or len(c["up_block_types"]) != n:
        bad("block_out_channels", "length differs from down_block_types/up_block_types")
    for t in c["down_block_types"]:
        if t.replace("UNetRes", "") not in ("DownBlock2D", "AttnDownBlock2D"):
            bad("down_block_types", "%r is not supported" % (t,))
    for t in c["up_block_types"]:
        if t.replace("UNetRes", "") not in ("UpBlock2D", "AttnUpBlock2D"):
            bad("up_block_types", "%r is not supported" % (t,))
    for k in ("downsample_type", "upsample_type"):
        if c[k] not in ("conv", "resnet"):
            bad(k, "%r is not supported" % (c[k],))
    if c["downsample_padding"] not in (0, 1):
        bad("downsample_padding", "%r is not 0 or 1" % (c["downsample_padding"],))


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = full_config(config)
        check_config(c)
        self.config = c
        boc = list(c["block_out_channels"])
        n = len(boc)
        L = c["layers_per_block"]
        temb = c["time_embedding_dim"] or 4 * boc[0]
        ahd = c["attention_head_dim"]

        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        if c["num_class_embeds"] is not None:
            self.class_embedding = nn.Embedding(c["num_class_embeds"], temb)
        else:
            self.class_embedding = None

        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i, typ in enumerate(c["down_block_types"]):
            cin, cout = cout, boc[i]
            attn = typ.replace("UNetRes", "") == "AttnDownBlock2D"
            self.down_blocks.append(DownBlock(cin, cout, L, temb, c, attn, i == n - 1,
                                              ahd if ahd is not None else cout))
        self.mid_block = MidBlock(boc[-1], temb, c) if c["mid_block_type"] is not None else None

        self.up_blocks = nn.ModuleList()
        rev = boc[::-1]
        cout = rev[0]
        for i, typ in enumerate(c["up_block_types"]):
            prev, cout = cout, rev[i]
            cin = rev[min(i + 1, n - 1)]
            attn = typ.replace("UNetRes", "") == "AttnUpBlock2D"
            self.up_blocks.append(UpBlock(cin, cout, prev, L + 1, temb, c, attn, i == n - 1,
                                          ahd if ahd is not None else cout))

        self.conv_norm_out = nn.GroupNorm(c["norm_num_groups"], boc[0], eps=c["norm_eps"])
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def forward(self, x, t, labels=None):
        c = self.config
        if c["center_input_sample"]:
            x = 2 * x - 1.0
        t = torch.as_tensor(t)
        if t.dim() == 0:
            t = t[None]
        t = t * torch.ones(x.shape[0], dtype=t.dtype)
        e = timestep_sinusoid(t, c["block_out_channels"][0], c["flip_sin_to_cos"], c["freq_shift"], x.dtype)
        emb = self.time_embedding(e)
        if self.class_embedding is not None:
            if labels is None:
                raise ValueError("class_labels are required: the model has num_class_embeds")
            emb = emb + self.class_embedding(torch.as_tensor(labels))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            h, res = blk(h, emb)
            skips += res
        if self.mid_block is not None:
            h = self.mid_block(h, emb)
        for blk in self.up_blocks:
            h = blk(h, skips, emb)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


LEGACY = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def to_legacy_names(sd):
    """Rename attention weights to the pre-0.14 diffusers spelling."""
    out = {}
    for k, v in sd.items():
        nk = k
        if ".attentions." in k:
            for a, b in LEGACY.items():
                nk = nk.replace(a, b)
        out[nk] = v
    return out


def from_legacy_names(sd):
    out = {}
    for k, v in sd.items():
        nk = k
        if ".attentions." in k:
            for a, b in LEGACY.items():
                nk = nk.replace(b, a)
        out[nk] = v
    return out


# ---------------------------------------------------------------- safetensors
_DT = {  # name -> (torch dtype, bytes)
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "U8": (torch.uint8, 1), "I8": (torch.int8, 1),
}
_DT_OF = {v[0]: k for k, v in _DT.items()}


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()  # numpy on x86 is little-endian


def save_safetensors(path, tensors, metadata=None):
    """Write `tensors` (name -> torch.Tensor) in the reference writer's layout:
    sorted by descending dtype size then name, header space-padded so that the
    data starts at a multiple of 8."""
    names = sorted(tensors, key=lambda k: (-_DT[_DT_OF[tensors[k].dtype]][1], k))
    header = {}
    blobs = []
    off = 0
    for k in names:
        t = tensors[k]
        b = _tensor_bytes(t)
        header[k] = {"dtype": _DT_OF[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    meta = {"format": "pt"}
    if metadata:
        meta.update(metadata)
    hdr = dict([("__metadata__", meta)] + list(header.items()))
    js = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)


def load_safetensors(path):
    """Read a safetensors file into name -> torch.Tensor, checking the layout
    rules (contiguous sorted offsets, sizes, file size)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > 100_000_000 or 8 + n > len(data):
        raise ValueError("%s: header length %d invalid" % (path, n))
    hdr = json.loads(data[8:8 + n].decode("utf-8"))
    hdr.pop("__metadata__", None)
    base = 8 + n
    ents = sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"])
    pos = 0
    out = {}
    for k, e in ents:
        dt, size = _DT[e["dtype"]]
        a, b = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if a != pos or b - a != count * size:
            raise ValueError("%s: tensor %s has bad data_offsets" % (path, k))
        pos = b
        raw = bytearray(data[base + a:base + b])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if count else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if count else torch.empty(0, dtype=dt)
        out[k] = t.reshape(e["shape"]).clone()
    if base + pos != len(data):
        raise ValueError("%s: file size does not match the header" % path)
    return out


def load_model(folder, dtype=torch.float32):
    """Load a diffusers model folder (config.json + diffusion_pytorch_model.safetensors)."""
    import os
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    m = UNet2DModel(cfg)
    sd = from_legacy_names(load_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors")))
    m.load_state_dict({k: v.to(dtype) for k, v in sd.items()})
    return m.to(dtype).eval()


def save_model(folder, model, config, legacy=False, scheduler=True):
    """Write config.json (+ scheduler_config.json) and F32 weights."""
    import os
    os.makedirs(folder, exist_ok=True)
    cfg = {"_class_name": "UNet2DModel", "_diffusers_version": "0.27.0"}
    cfg.update(config)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if scheduler:
        with open(os.path.join(folder, "scheduler_config.json"), "w") as f:
            json.dump(DDPM_SCHEDULER, f, indent=2)
            f.write("\n")
    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    if legacy:
        sd = to_legacy_names(sd)
    save_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), sd)


# ------------------------------------------------------------- schedulers
def ddpm_alphas_cumprod(T=1000, beta_start=1e-4, beta_end=0.02):
    """float32 cumprod of 1 - linspace(beta_start, beta_end, T), as diffusers."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


@torch.no_grad()
def ddim_sample(model, x, labels, steps=50, T=1000, clip=True):
    """DDIMScheduler (eta 0, leading spacing, set_alpha_to_one, prev = t - T//N,
    epsilon prediction, clip_sample) from x_T; returns x_0."""
    ac = ddpm_alphas_cumprod(T).to(x.dtype)
    r = T // steps
    for t in range(r * (steps - 1), -1, -r):
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long), labels)
        a_t = ac[t]
        a_p = ac[t - r] if t - r >= 0 else torch.tensor(1.0, dtype=x.dtype)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    return x


def count_params(model):
    return sum(p.numel() for p in model.parameters())

#!/usr/bin/env python3
"""Write the seed corpora under tests/fuzz/corpus/ (st, json, share).

Valid files in the reference layout plus one file per hostile class. Run
from anywhere; rewrites the seed files it names (libFuzzer finds kept in
the corpus directories are left alone)."""
import json, os, struct, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "U64": 8, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}


def st(tensors, meta=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes). Reference-writer order."""
    order = sorted(tensors, key=lambda t: (-SIZES.get(t[1], 1), t[0]))
    hdr, off, data = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in order:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def raw_st(header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def write(sub, name, blob):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def zstd(blob):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=blob, stdout=subprocess.PIPE,
                          check=True).stdout


def seeds_st():
    f32 = struct.pack("<6f", 1, -2, 0.5, 3, 4, 5)
    valid = st([("conv.weight", "F32", [2, 3], f32),
                ("h", "F16", [4], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0x7E00)),
                ("bf", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC040)),
                ("d", "F64", [1], struct.pack("<d", 2.5)),
                ("u", "U64", [2], struct.pack("<2Q", 1, 2**63)),
                ("i", "I64", [1], struct.pack("<q", -1)),
                ("i32", "I32", [1], struct.pack("<i", -7)),
                ("b", "U8", [3], b"\x01\x02\x03"), ("flag", "BOOL", [1], b"\x01"),
                ("scalar", "F32", [], struct.pack("<f", 9)), ("empty", "F32", [0, 4], b"")],
               meta={"format": "pt"})
    write("st", "valid", valid)
    write("st", "valid.zst", zstd(valid))
    write("st", "valid_unpadded", st([("a", "F32", [2], f32[:8])], pad=False))
    write("st", "empty_header", raw_st("{}"))
    write("st", "whitespace", raw_st("  {\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}} \n", b"x"))
    write("st", "short", b"\x02\x00\x00")
    write("st", "hlen_beyond", struct.pack("<Q", 1024) + b"{}")
    write("st", "hlen_2e60", struct.pack("<Q", 2**60) + b"{}" + b" " * 14)
    write("st", "not_json", raw_st("{abc"))
    write("st", "not_object", raw_st("[1,2,3]"))
    write("st", "bad_utf8", raw_st(b"{\"\xff\xfe\":{}}"))
    write("st", "deep", raw_st("{\"a\":" + "[" * 40 + "]" * 40 + "}"))
    write("st", "unknown_dtype", raw_st('{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', b"x"))
    write("st", "negative_shape", raw_st('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', b"x"))
    write("st", "shape_overflow", raw_st('{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}'))
    two = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]},"b":{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]}}'
    write("st", "overlap", raw_st(two % (0, 8, 4, 12), b"\0" * 12))
    write("st", "hole", raw_st(two % (0, 8, 12, 20), b"\0" * 20))
    write("st", "unsorted_ok", raw_st(two % (8, 16, 0, 8), b"\0" * 16))
    write("st", "reversed_offsets", raw_st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', b"\0" * 8))
    write("st", "trailing_data", raw_st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 12))
    write("st", "size_mismatch", raw_st('{"a":{"dtype":"F32","shape":[5,5],"data_offsets":[0,96]}}', b"\0" * 96))
    write("st", "duplicate", raw_st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"))
    write("st", "meta_nonstring", raw_st('{"__metadata__":{"format":1}}'))
    write("st", "zstd_truncated", zstd(valid)[:-5])
    # a small zstd bomb: 8 MiB of zeros claims and produces far more than its size
    write("st", "zstd_bomb", zstd(struct.pack("<Q", 2) + b"{}" + b"\0" * (8 << 20)))


def seeds_json():
    cfg = {"_class_name": "UNet2DModel", "_diffusers_version": "0.21.0", "sample_size": 32,
           "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
           "block_out_channels": [128, 256, 256, 256],
           "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
           "attention_head_dim": None, "norm_eps": 1e-6, "norm_num_groups": 32,
           "center_input_sample": False, "time_embedding_type": "positional", "flip_sin_to_cos": True,
           "freq_shift": 0, "num_class_embeds": 10}
    write("json", "unet_config", json.dumps(cfg, indent=2).encode())
    sched = {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 0.0001,
             "beta_end": 0.02, "num_train_timesteps": 1000, "clip_sample": True,
             "prediction_type": "epsilon", "variance_type": "fixed_small", "trained_betas": None}
    write("json", "scheduler_config", json.dumps(sched).encode())
    write("json", "syntax_error", b'{\n  "a": 1,\n  "b" 2\n}')
    write("json", "duplicate", b'{"a":1,"a":2}')
    write("json", "deep", b'{"a":' + b"[" * 100 + b"]" * 100 + b"}")
    write("json", "bad_utf8", b'{"a":"\xc3\x28"}')
    write("json", "nul", b'{"a":"x\\u0000y"}')
    write("json", "huge_int", b'{"a":123456789012345678901234567890}')
    write("json", "array_top", b"[1,2]")


def share(party, kind, meta_extra=None, frac="20", fmt="cdm-share/1",
          sid="0123456789abcdef0123456789abcdef"):
    meta = {"format": fmt, "party": str(party), "ring_bits": "64", "frac_bits": frac,
            "sharing_id": sid, "kind": kind}
    if kind == "model":
        meta["config"] = '{"sample_size": 28, "in_channels": 1}'
    meta.update(meta_extra or {})
    x = struct.pack("<4Q", 1, 2, 3, 2**64 - 1)
    return st([("x.a", "U64", [2, 2], x), ("x.b", "U64", [2, 2], x[::-1]),
               ("s.a", "U64", [], struct.pack("<Q", 7)), ("s.b", "U64", [], struct.pack("<Q", 0))],
              meta=meta)


def seeds_share():
    for p in range(3):
        write("share", "model.%d" % p, share(p, "model"))
    write("share", "input.1", share(1, "input"))
    write("share", "output.2.zst", zstd(share(2, "output")))
    write("share", "bad_format", share(0, "model", fmt="pt"))
    write("share", "bad_party", share(0, "model", {"party": "3"}))
    write("share", "bad_frac", share(0, "model", frac="99"))
    write("share", "bad_id", share(0, "model", sid="XYZ"))
    write("share", "bad_kind", share(0, "weights"))
    write("share", "bad_config", share(0, "model", {"config": "{oops"}))
    meta = {"format": "cdm-share/1", "party": "0", "ring_bits": "64", "frac_bits": "20",
            "sharing_id": "0123456789abcdef0123456789abcdef", "kind": "input"}
    write("share", "no_partner", st([("x.a", "U64", [1], b"\0" * 8)], meta=meta))
    write("share", "shape_mismatch", st([("x.a", "U64", [1], b"\0" * 8), ("x.b", "U64", [1, 1], b"\0" * 8)], meta=meta))
    write("share", "not_u64", st([("x.a", "F32", [2], b"\0" * 8), ("x.b", "U64", [1], b"\0" * 8)], meta=meta))
    write("share", "stray_tensor", st([("x", "U64", [1], b"\0" * 8)], meta=meta))
    write("share", "unaligned", st([("x.a", "U64", [1], b"\1" * 8), ("x.b", "U64", [1], b"\2" * 8)], meta=meta, pad=False))
    seeds_share_v2()


def seeds_share_v2():
    """Format 2: seeded components (lib/fmt/share.h)."""
    ka, kb = "000102030405060708090a0b0c0d0e0f", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    idx = json.dumps({"x": [2, 2], "s": []}, sort_keys=True)
    x = struct.pack("<4Q", 1, 2, 3, 2**64 - 1)

    def meta(p, **kw):
        m = {"format": "cdm-share/2", "party": str(p), "ring_bits": "64", "frac_bits": "20",
             "sharing_id": "0123456789abcdef0123456789abcdef", "kind": "model",
             "config": '{"sample_size": 28, "in_channels": 1}', "secrets": idx}
        m.update(kw)
        return m
    write("share", "seeded.0", st([], meta=meta(0, seed_a=ka, seed_b=kb)))
    write("share", "seeded.1", st([("x.b", "U64", [2, 2], x), ("s.b", "U64", [], x[:8])],
                                  meta=meta(1, seed_a=kb)))
    write("share", "seeded.2", st([("x.a", "U64", [2, 2], x), ("s.a", "U64", [], x[:8])],
                                  meta=meta(2, seed_b=ka)))
    write("share", "seeded_stored", st([("x.b", "U64", [2, 2], x)], meta=meta(0, seed_a=ka, seed_b=kb)))
    write("share", "seeded_no_index", st([], meta={k: v for k, v in meta(0, seed_a=ka).items()
                                                   if k != "secrets"}))
    write("share", "seeded_huge", st([], meta=meta(0, seed_a=ka, seed_b=kb,
                                                   secrets='{"x": [1099511627776, 1099511627776]}')))
    write("share", "version_3", share(0, "model", fmt="cdm-share/3"))


if __name__ == "__main__":
    seeds_st()
    seeds_json()
    seeds_share()
    print("corpus written under", os.path.join(HERE, "corpus"), file=sys.stderr)

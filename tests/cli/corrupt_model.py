"""Writes a corrupted copy of a Hugging Face fixture directory, one defect
per case, for test_bad_models.sh. Usage: corrupt_model.py SRC DST CASE"""
import json
import shutil
import struct
import sys

src, dst, case = sys.argv[1:4]
shutil.copytree(src, dst)
st = dst + "/model.safetensors"
raw = open(st, "rb").read()
(hlen,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + hlen])
data = raw[8 + hlen :]
names = sorted(k for k in header if k != "__metadata__")


def write_st(h, body=data):
    text = json.dumps(h).encode()
    open(st, "wb").write(struct.pack("<Q", len(text)) + text + body)


def edit_config(fn):
    cfg = json.load(open(dst + "/config.json"))
    fn(cfg)
    json.dump(cfg, open(dst + "/config.json", "w"))


if case == "truncated":
    open(st, "wb").write(raw[: len(raw) // 2])
elif case == "header_past_eof":
    open(st, "wb").write(struct.pack("<Q", len(raw) * 4) + raw[8:])
elif case == "bad_json":
    open(st, "wb").write(raw[:8] + b"{" * hlen + data)
elif case == "unknown_dtype":
    header[names[0]]["dtype"] = "Q99"
    write_st(header)
elif case == "span_out_of_bounds":
    t = header[names[-1]]
    t["data_offsets"] = [t["data_offsets"][0], len(data) + 64]
    write_st(header)
elif case == "span_overlap":
    a, b = header[names[0]], header[names[1]]
    if a["data_offsets"] == b["data_offsets"]:
        raise SystemExit("fixture has identical spans")
    b["data_offsets"] = list(a["data_offsets"])
    b["shape"], b["dtype"] = a["shape"], a["dtype"]
    write_st(header)
elif case == "tensor_missing":
    del header["model.norm.weight"]
    write_st(header)
elif case == "shape_vs_config":
    edit_config(lambda c: c.update(intermediate_size=96))
elif case == "config_key_missing":
    edit_config(lambda c: c.pop("num_hidden_layers"))
elif case == "config_wrong_type":
    edit_config(lambda c: c.update(hidden_size="64"))
elif case == "expert_missing":
    del header["model.layers.0.mlp.experts.1.up_proj.weight"]
    write_st(header)
elif case == "router_misshapen":
    t = header["model.layers.0.mlp.gate.weight"]
    t["shape"] = [t["shape"][0] * 2, t["shape"][1] // 2]
    write_st(header)
elif case == "unknown_layer_type":
    edit_config(lambda c: c["layer_types"].__setitem__(1, "chunked_attention"))
elif case == "per_layer_config_mismatch":
    edit_config(lambda c: c["per_layer_config"]["2"].update(head_dim=64))
elif case == "config_not_json":
    open(dst + "/config.json", "w").write('{"hidden_size": 64,')
else:
    raise SystemExit("unknown case " + case)

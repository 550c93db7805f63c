#!/usr/bin/env bash
# Corrupt GGUF files give a one-line error naming the file and exit 1,
# never a crash (exit >= 128) or a hang: stories260K.gguf truncated at 20
# offsets across the header, metadata, tensor infos and data, and with
# header fields overwritten (magic, version, counts, a tensor's type, dims
# and offset, a string length).
# usage: test_bad_gguf.sh SPINDLE SHARED_DIR BUILD_DIR
set -u
bin=$1 shared=$2 build=$3
src=$shared/models/stories260K.gguf
work=$build/test-bad-gguf
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0

# Writes the corrupt files and prints "name<TAB>description" per file.
python3 - "$src" "$work" <<'PY' > "$work/cases.tsv" || { echo "FAIL: setup"; exit 1; }
import struct, sys
src, work = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
pos = 24
def skip_str(p):
    n = struct.unpack_from("<Q", b, p)[0]; return p + 8 + n
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip_val(p, t):
    if t == 8: return skip_str(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p); p += 12
        for _ in range(n): p = skip_val(p, et)
        return p
    return p + SIZES[t]
n_t, n_kv = struct.unpack_from("<QQ", b, 8)
kv_starts = []
for _ in range(n_kv):
    kv_starts.append(pos); pos = skip_str(pos); t = struct.unpack_from("<I", b, pos)[0]; pos = skip_val(pos + 4, t)
kv_end = pos
infos = []
for _ in range(n_t):
    start = pos; pos = skip_str(pos); nd = struct.unpack_from("<I", b, pos)[0]
    dims_at = pos + 4; type_at = dims_at + 8 * nd; infos.append((start, dims_at, type_at, type_at + 4))
    pos = type_at + 12
info_end = pos
data = (info_end + 31) // 32 * 32
cuts = [0, 3, 4, 7, 12, 20, 23,                                   # header
        kv_starts[0] + 4, kv_starts[0] + 12, kv_starts[1] + 30,   # metadata
        (kv_starts[0] + kv_end) // 2, kv_end - 1,
        kv_end + 3, infos[5][1] + 2, infos[20][2] + 1, info_end - 2,  # tensor infos
        data, data + 1000, (data + len(b)) // 2, len(b) - 1]      # data
assert len(cuts) == 20
for i, c in enumerate(cuts):
    open(f"{work}/trunc{i:02d}.gguf", "wb").write(b[:c])
    print(f"trunc{i:02d}\ttruncated at byte {c} of {len(b)}")
def patch(name, at, fmt, value, what):
    m = bytearray(b); struct.pack_into(fmt, m, at, value)
    open(f"{work}/{name}.gguf", "wb").write(m); print(f"{name}\t{what}")
patch("magic", 0, "<I", 0x46554747 ^ 0xFF, "bad magic")
patch("version1", 4, "<I", 1, "version 1")
patch("version99", 4, "<I", 99, "version 99")
patch("tensor_count", 8, "<Q", 1 << 40, "tensor count 2^40")
patch("kv_count", 16, "<Q", 1 << 40, "kv count 2^40")
patch("kv_count_small", 16, "<Q", n_kv - 3, "kv count 3 short (infos read as metadata)")
patch("key_length", kv_starts[0], "<Q", 1 << 50, "first key length 2^50")
patch("value_type", skip_str(kv_starts[3]), "<I", 77, "metadata value type 77")
patch("tensor_type", infos[3][2], "<I", 99, "tensor type id 99")
patch("tensor_type_q2k", infos[3][2], "<I", 10, "tensor type Q2_K (known, unsupported)")
patch("tensor_offset", infos[4][3], "<Q", 1 << 40, "tensor offset past the end")
patch("tensor_offset_misaligned", infos[4][3], "<Q", struct.unpack_from("<Q", b, infos[4][3])[0] + 1, "tensor offset misaligned")
patch("tensor_dim", infos[2][1], "<Q", 1 << 62, "tensor dim 2^62")
patch("tensor_ndim", infos[2][1] - 4, "<I", 9, "tensor n_dims 9")
# well-formed files whose model description is wrong (the mapping's checks)
def kv_value_at(key):
    for p in kv_starts:
        n = struct.unpack_from("<Q", b, p)[0]
        if b[p + 8:p + 8 + n].decode() == key: return p + 8 + n + 4
    raise KeyError(key)
patch("arch_unknown", kv_value_at("general.architecture") + 8, "<5s", b"llamb", "architecture 'llamb'")
patch("heads_zero", kv_value_at("llama.attention.head_count"), "<I", 0, "head_count 0")
patch("heads_odd", kv_value_at("llama.attention.head_count"), "<I", 7, "head_count 7 (4 KV heads)")
patch("blocks_many", kv_value_at("llama.block_count"), "<I", 1000, "block_count 1000 (tensors missing)")
patch("blocks_huge", kv_value_at("llama.block_count"), "<I", 0xFFFFFFFF, "block_count 2^32-1")
patch("embd_wrong", kv_value_at("llama.embedding_length"), "<I", 96, "embedding_length 96 (tensors are 64)")
patch("ffn_wrong", kv_value_at("llama.feed_forward_length"), "<I", 0, "feed_forward_length 0")
patch("rope_dims", kv_value_at("llama.rope.dimension_count"), "<I", 1 << 20, "rope dims 2^20")
PY
n=$(grep -c . "$work/cases.tsv")
[ "$n" -ge 40 ] || { echo "FAIL: only $n cases"; exit 1; }
while IFS=$'\t' read -r name what; do
  f=$work/$name.gguf
  out=$(timeout 60 "$bin" generate --model "$f" --tokens 1,403,407 -n 2 2>&1 >/dev/null); rc=$?
  out=$(printf '%s\n' "$out" | grep -Ev '^[0-9:.]+ info ') # the start-up line is no error
  lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [[ $out == *"$name.gguf"* ]]; then
    echo "ok   $name ($what): $out"; pass=$((pass+1))
  else
    echo "FAIL $name ($what): exit $rc, $lines lines: $out"; fail=$((fail+1))
  fi
done < "$work/cases.tsv"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

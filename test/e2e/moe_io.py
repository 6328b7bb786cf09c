"""Tiny readers and writers for the end-to-end tests: safetensors (F32 and BF16) and .npy.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON mapping each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte
after the header; an optional "__metadata__" maps strings to strings), then the raw
little-endian, row-major tensor data. BF16 values are float32 values rounded to nearest even
and kept as their upper 16 bits. Only numpy and the standard library are used.
"""

import json
import struct

import numpy as np

_DTYPE_SIZE = {"F32": 4, "BF16": 2}


def bf16_bits(values):
    """Round float32 values to bfloat16 (nearest, ties to even) and return the uint16 bits.
    NaN stays a quiet NaN of the same sign."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    rounded = np.where(nan, (bits >> 16) | 0x0040, rounded)
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    """Widen bfloat16 bits (uint16) to the float32 values they stand for."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(values):
    """The float32 values nearest to `values` that bfloat16 can hold (round to nearest even)."""
    return bf16_to_f32(bf16_bits(values)).reshape(np.shape(values))


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """Write `tensors` (name -> float array) to `path`. `dtype` is "F32" or "BF16" for every
    tensor, or a dict name -> dtype. `metadata` is an optional dict of strings."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        kind = dtype[name] if isinstance(dtype, dict) else dtype
        array = np.asarray(tensors[name])
        if kind == "F32":
            data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        elif kind == "BF16":
            data = bf16_bits(array).astype("<u2").tobytes()
        else:
            raise ValueError(f"unsupported safetensors dtype '{kind}' for tensor '{name}'")
        header[name] = {"dtype": kind, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in chunks:
            f.write(data)


def read_safetensors(path):
    """Read a safetensors file with F32 or BF16 tensors. Returns (tensors, dtypes): name ->
    float32 array, and name -> dtype string as stored."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = blob[8 + header_len:]
    tensors, dtypes = {}, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        kind, shape = entry["dtype"], entry["shape"]
        begin, end = entry["data_offsets"]
        if kind not in _DTYPE_SIZE:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype '{kind}'")
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * _DTYPE_SIZE[kind] or not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor '{name}' has bad data_offsets {[begin, end]}")
        raw = data[begin:end]
        if kind == "F32":
            array = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            array = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        tensors[name] = array.reshape(shape)
        dtypes[name] = kind
    return tensors, dtypes


def save_npy(path, array):
    """Write a float32 .npy file."""
    np.save(path, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)


def load_npy(path):
    """Read a .npy file (no pickles)."""
    return np.load(path, allow_pickle=False)

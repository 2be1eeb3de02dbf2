"""Shared helpers of the GGUF / merge reference scripts (make_gguf_fixtures.py, check_gguf.py).

A small GGUF reader that keeps the raw bytes of every value and tensor (so that fixtures can
record exactly what llama.cpp's own tools wrote), FNV-1a hashes the C++ tests recompute, and the
locations of llama.cpp: the vendored source of llama-cpp-python (for convert_hf_to_gguf.py and its
gguf-py) and the shared libraries of the installed llama_cpp package (for ggml's quantizers).
"""
import ctypes
import os
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
GGUF_FIX = REPO / "tests" / "fixtures" / "gguf"
MERGE_FIX = REPO / "tests" / "fixtures" / "merge"
KTO = Path(os.environ.get("KTO_BINARY", REPO / "build" / "kto")).resolve()

GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q4_K": 12, "q5_K": 13,
              "q6_K": 14, "bf16": 30}
BLOCK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 12: (256, 144),
         13: (256, 176), 14: (256, 210), 30: (1, 2)}
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


class Gguf:
    """Parses a GGUF v3 file: kv[key] = (type, raw value bytes, python value), tensors[name] = (type, ne, bytes)."""

    def __init__(self, path):
        self.data = Path(path).read_bytes()
        self.pos = 0
        magic = self.data[:4]
        assert magic == b"GGUF", f"{path}: not GGUF"
        self.pos = 4
        self.version = self._u("<I")
        n_tensors, n_kv = self._u("<Q"), self._u("<Q")
        self.kv, self.kv_order = {}, []
        for _ in range(n_kv):
            key = self._str()
            vtype = self._u("<i")
            start = self.pos
            value = self._value(vtype)
            self.kv[key] = (vtype, self.data[start:self.pos], value)
            self.kv_order.append(key)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            nd = self._u("<I")
            ne = [self._u("<Q") for _ in range(nd)]
            ttype = self._u("<i")
            off = self._u("<Q")
            infos.append((name, ne, ttype, off))
        align = self.kv.get("general.alignment", (4, b"", 32))[2]
        base = (self.pos + align - 1) // align * align
        self.tensors, self.tensor_order = {}, []
        for name, ne, ttype, off in infos:
            n = 1
            for d in ne:
                n *= d
            blk, nbytes = BLOCK[ttype]
            size = n // blk * nbytes
            self.tensors[name] = (ttype, ne, self.data[base + off:base + off + size])
            self.tensor_order.append(name)

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        n = self._u("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def _value(self, vtype):
        if vtype == 8:
            return self._str()
        if vtype == 9:
            etype, n = self._u("<i"), self._u("<Q")
            return [self._value(etype) for _ in range(n)]
        return self._u(SCALAR[vtype])


def llama_cpp_source() -> Path:
    """The llama.cpp source tree (convert_hf_to_gguf.py, gguf-py): $LLAMA_CPP_DIR, or /tmp/llsrc/llama.cpp."""
    for p in (os.environ.get("LLAMA_CPP_DIR"), "/tmp/llsrc/llama.cpp"):
        if p and (Path(p) / "convert_hf_to_gguf.py").exists():
            return Path(p)
    sys.exit("llama.cpp source not found: set LLAMA_CPP_DIR to the llama.cpp tree vendored by llama-cpp-python "
             "(pip download llama-cpp-python --no-deps --no-binary :all: and unpack vendor/llama.cpp)")


def ggml_lib():
    """ggml-base of the installed llama_cpp package (its quantizers are the ones llama_model_quantize calls)."""
    import llama_cpp
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib"):
        if (lib_dir / name).exists():
            lib = ctypes.CDLL(str(lib_dir / name))
            lib.ggml_quantize_chunk.restype = ctypes.c_size_t
            lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                                ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            return lib
    sys.exit(f"libggml-base not found in {lib_dir}")

"""Each layer's K neuron ids as a set: a bitset over the layer's commonest neurons, and the rest listed.

A few neurons of every layer are in nearly every text's NAG: on real pools 97% of
the stored ids are among their layer's 64 commonest neurons (docs/design.md
§2.1). So a document's layer is stored as one uint64 whose bit ``r`` says that
the layer's ``r``-th commonest neuron is in the NAG, followed by the ids of the
few that are not (uint16 each, ascending): about 280 bytes a document against
1,200 for uint16 ids in impact order. The order is forgotten, so a query uses
all K of a layer's neurons (any subset of layers is still a query-time choice).

A :class:`Codebook` names, per layer, the neurons that have a bit. Any codebook
encodes any codes exactly; one that fits the pool only makes the lists short.
Decoding gives each layer's neurons in the codebook's order, then the listed ones
ascending: that is the order the store's row checksums and impacts follow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

BITS = 64   # neurons per layer that have a bit: one uint64


@dataclass(frozen=True)
class Codebook:
    """Per layer, the neurons that have a bit, bit 0 first."""

    common: np.ndarray     # uint16 [L, C], C = min(BITS, N)

    @classmethod
    def of_counts(cls, df: np.ndarray) -> "Codebook":
        """The commonest neurons of each layer from its ``[L, N]`` document counts (ties by id)."""
        order = np.argsort(-np.asarray(df, np.int64), axis=1, kind="stable")
        return cls(order[:, :BITS].astype(np.uint16))

    def keys(self, neurons: int) -> np.ndarray:
        """int64 ``[L, neurons]``: each neuron's place in a decoded layer, its bit if it has one, else after them."""
        layers, bits = self.common.shape
        keys = np.tile(np.arange(bits, bits + neurons, dtype=np.int64), (layers, 1))
        np.put_along_axis(keys, self.common.astype(np.int64), np.arange(bits, dtype=np.int64)[None, :], axis=1)
        return keys

    def encode(self, codes: np.ndarray, neurons: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bits, rest, order)`` of codes ``[n, L, K]`` of distinct ids below ``neurons`` per layer.

        ``bits`` uint64 ``[n, L]``; ``rest`` uint16, the ids without a bit, document
        by document and layer by layer, ascending within each; ``order`` the
        permutation of each layer's K codes into their decoded order, for whatever
        is stored beside them (impacts).
        """
        codes = np.ascontiguousarray(codes, np.uint16)
        if len(codes) and int(codes.max()) >= neurons:
            raise ValueError(f"codes hold a neuron id {int(codes.max())}, beyond the {neurons} neurons")
        n, layers, top_k = codes.shape
        bits = np.zeros((n, layers), np.uint64)
        rest = np.empty(n * layers * top_k, np.uint16)
        order = np.empty(codes.shape, np.int64)
        listed, twice = _encode(codes, self.keys(neurons), self.common.shape[1], bits, rest, order)
        if twice >= 0:
            raise ValueError(f"codes hold a neuron twice in one layer (row {twice}): a NAG's K neurons are distinct")
        return bits, rest[:listed].copy(), order

    def decode(self, bits: np.ndarray, rest: np.ndarray, top_k: int) -> np.ndarray:
        """Codes uint16 ``[n, L, top_k]`` from ``bits`` ``[n, L]`` and exactly their ``rest``.

        Raises :class:`Undecodable` with the first row whose bits or list cannot be
        those of K distinct neurons a layer (damage: the store names the file).
        """
        out = np.empty((len(bits), bits.shape[1], top_k), np.uint16)
        bad = _decode(np.ascontiguousarray(bits, np.uint64), np.ascontiguousarray(rest, np.uint16), self.common, out)
        if bad >= 0:
            raise Undecodable(bad)
        return out


@dataclass(frozen=True)
class SetCodes:
    """Documents' codes as a sets store keeps them: what the exact scan scores without decoding them."""

    bits: np.ndarray       # uint64 [n, L]
    rest: np.ndarray       # uint16: the listed ids of these documents, in order
    starts: np.ndarray     # int64 [n + 1]: where each document's list starts in ``rest``
    codebook: Codebook
    top_k: int

    @classmethod
    def of(cls, bits: np.ndarray, rest: np.ndarray, codebook: Codebook, top_k: int) -> "SetCodes":
        """Raises :class:`Undecodable` naming the first row whose bits no K distinct neurons set, or the
        last row where ``rest`` is not as long as the bits say."""
        bits = np.ascontiguousarray(bits, np.uint64)
        counts = rest_counts(bits, top_k, codebook.common.shape[1])
        if len(counts) and counts.min() < 0:
            raise Undecodable(int(np.argmax(counts < 0)))
        starts = np.zeros(len(bits) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        if starts[-1] != len(rest):
            raise Undecodable(max(len(bits) - 1, 0))
        return cls(bits, np.ascontiguousarray(rest, np.uint16), starts, codebook, top_k)

    def __len__(self) -> int:
        return len(self.bits)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.bits), self.bits.shape[1], self.top_k

    def head(self, n: int) -> "SetCodes":
        """The first ``n`` documents."""
        if n >= len(self.bits):
            return self
        return SetCodes(self.bits[:n], self.rest[:self.starts[n]], self.starts[:n + 1], self.codebook, self.top_k)

    def take(self, at: np.ndarray) -> "SetCodes":
        """The documents at positions ``at`` (any order, repeats allowed)."""
        at = np.asarray(at, np.int64)
        counts = self.starts[at + 1] - self.starts[at]
        starts = np.zeros(len(at) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        picked = np.repeat(self.starts[at] - starts[:-1], counts) + np.arange(starts[-1])
        return SetCodes(self.bits[at], self.rest[picked], starts, self.codebook, self.top_k)

    def decoded(self) -> np.ndarray:
        """uint16 ``[n, L, K]``, in the decoded order (the codebook's, then the listed ids)."""
        return self.codebook.decode(self.bits, self.rest, self.top_k)

    def checksums(self) -> np.ndarray:
        """uint32 ``[n]``: the row checksum (nagindex.store) of each document's stored words, its bits
        as four uint16 words each, then its listed ids."""
        layers = self.bits.shape[1]
        return _set_checksums(self.bits, self.rest, self.starts, checksum_weights(4 * layers + layers * self.top_k))


def set_checksums_as_read(bits: np.ndarray, rest: np.ndarray, top_k: int) -> np.ndarray:
    """The row checksums of rows whose lists may not fit their bits (damage): each list taken as the
    bits say, within ``rest``, so that the first row that does not match is the damaged one."""
    bits = np.ascontiguousarray(bits, np.uint64)
    starts = np.zeros(len(bits) + 1, np.int64)
    np.cumsum(np.maximum(rest_counts(bits, top_k), 0), out=starts[1:])
    layers = bits.shape[1]
    return _set_checksums(bits, np.ascontiguousarray(rest, np.uint16), np.minimum(starts, len(rest)),
                          checksum_weights(4 * layers + layers * top_k))


def checksum_weights(m: int) -> np.ndarray:
    """The fixed odd weights of the row checksums, for rows of up to ``m`` uint16 words."""
    w = (np.arange(1, m + 1, dtype=np.uint64) * np.uint64(0x9E3779B1)) ^ np.uint64(0x85EBCA6B)
    return (w & np.uint64(0xFFFFFFFF)).astype(np.uint32) | np.uint32(1)


class Undecodable(ValueError):
    """Bits and lists that no K distinct neurons encode to, from ``row`` on."""

    def __init__(self, row: int):
        super().__init__(f"row {row} cannot be decoded")
        self.row = row


def rest_counts(bits: np.ndarray, top_k: int, width: int = BITS) -> np.ndarray:
    """int64 ``[n]``: how many listed ids each document's ``bits`` ``[n, L]`` leave for its list; -1 where
    a layer has more than ``top_k`` bits set, or one at or past ``width``."""
    return _rest_counts(np.ascontiguousarray(bits, np.uint64), top_k, width)


@intrinsic
def popcount(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@intrinsic
def _lowest_bit(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.uint64(types.uint64), codegen


@njit(inline="always")
def _valid(width):
    return ~np.uint64(0) if width >= 64 else (np.uint64(1) << np.uint64(width)) - np.uint64(1)


@njit(nogil=True, cache=True)
def _rest_counts(bits, top_k, width):
    n, layers = bits.shape
    valid = _valid(width)
    out = np.empty(n, np.int64)
    for d in range(n):
        listed = 0
        for j in range(layers):
            ones = np.int64(popcount(bits[d, j]))
            if ones > top_k or bits[d, j] & ~valid:
                listed = -1
                break
            listed += top_k - ones
        out[d] = listed
    return out


@njit(nogil=True, cache=True)
def _encode(codes, keys, width, bits, rest, order):
    """Fill ``bits``, ``rest`` and ``order`` (see ``Codebook.encode``); ``(ids listed, first row holding
    a neuron twice in a layer or -1)``. Each layer's K keys are put in order by insertion: K is small."""
    n, layers, top_k = codes.shape
    key = np.empty(top_k, np.int64)
    came = np.empty(top_k, np.int64)
    at = 0
    for d in range(n):
        for j in range(layers):
            for k in range(top_k):
                value = keys[j, codes[d, j, k]]
                i = k
                while i > 0 and key[i - 1] > value:
                    key[i] = key[i - 1]
                    came[i] = came[i - 1]
                    i -= 1
                key[i] = value
                came[i] = k
            b = np.uint64(0)
            for k in range(top_k):
                if k and key[k] == key[k - 1]:
                    return at, d
                order[d, j, k] = came[k]
                if key[k] < width:
                    b |= np.uint64(1) << np.uint64(key[k])
                else:
                    rest[at] = key[k] - width
                    at += 1
            bits[d, j] = b
    return at, -1


@njit(nogil=True, cache=True)
def _set_checksums(bits, rest, starts, weights):
    n, layers = bits.shape
    out = np.empty(n, np.uint32)
    mask = np.uint64(0xFFFF)
    for d in range(n):
        h = np.uint32(0)
        for j in range(layers):
            b = bits[d, j]
            for q in range(4):
                h += np.uint32((b >> np.uint64(16 * q)) & mask) * weights[4 * j + q]
        w = 4 * layers
        for i in range(starts[d], starts[d + 1]):
            h += np.uint32(rest[i]) * weights[w]
            w += 1
        out[d] = h
    return out


@njit(nogil=True, cache=True)
def _decode(bits, rest, common, out):
    """Fill ``out`` from ``bits`` and ``rest``; the first bad row, ``len(bits)`` for a list of the wrong
    length, or -1."""
    n, layers = bits.shape
    top_k = out.shape[2]
    valid = _valid(common.shape[1])
    at = 0
    for d in range(n):
        for j in range(layers):
            b = bits[d, j]
            if b & ~valid:
                return d
            ones = np.int64(popcount(b))
            listed = top_k - ones
            if listed < 0 or at + listed > len(rest):
                return d
            k = 0
            while b:
                out[d, j, k] = common[j, _lowest_bit(b)]
                b &= b - np.uint64(1)
                k += 1
            for q in range(listed):
                out[d, j, k + q] = rest[at + q]
            at += listed
    return -1 if at == len(rest) else n

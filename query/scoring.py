"""Exact scoring of stored codes against one or many target profiles.

A document's score against a target is a table lookup summed over its codes
(docs/design.md §1.2): ``sum over selected layers l, over its first top_k codes
c of layer l, of P[l, c]``. The pool is far larger than memory and every
document must be scored, so this is a streaming scan and the work per code is
what decides the speed.

Several targets are scored in one pass: the table is laid out ``[layer, neuron,
target]`` so a code fetches one contiguous row holding every target's weight.
With one target the kernel keeps four scalar running sums (independent chains
hide the latency of floating-point adds). With several, rows are padded to a
multiple of eight and each code costs a single eight-lane vector add, so up to
eight targets cost about what one does. Numba leaves LLVM's SLP vectorizer off
and, without fastmath, will not vectorize these sums itself, hence the small
intrinsic that spells the vector add out.

Exactness: within a layer sums are float32 (at most ``top_k`` terms), across
layers float64, and scores are returned as float32. Integer tables, as the
paper's count weighting gives, come out exact whenever a document's sum is below
2**24, so ties between documents, which decide rankings, are kept. Float tables
agree with :func:`numpy_gather` to float32 rounding.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from nagindex.codec import BITS, Codebook, SetCodes, popcount
from nagindex.errors import CodeOutOfRange

T = TypeVar("T")
_END = object()  # what ``next`` returns once the chunks are done

LANES = 8        # float32 lanes of one AVX2 vector: targets that share one add
BYTE_ROWS = 8 * 256  # rows of a sets layer's byte sums: eight bytes of bits, 256 values each
BLOCK_DOCS = 64  # documents checked, then scored, while their codes are in cache


def _add_rows(builder, total, n, row_at):
    """``total += row_at(0) + ... + row_at(n - 1)``, four rows at a time, so that consecutive adds do not
    wait on each other (a float add's latency is several cycles; four independent loads hide it)."""
    intp = n.type
    four = ir.Constant(intp, 4)
    groups = builder.udiv(n, four)
    with cgutils.for_range(builder, groups) as loop:
        i = builder.mul(loop.index, four)
        r = [row_at(builder.add(i, ir.Constant(intp, u))) for u in range(4)]
        quad = builder.fadd(builder.fadd(r[0], r[1]), builder.fadd(r[2], r[3]))
        builder.store(builder.fadd(builder.load(total), quad), total)
    with cgutils.for_range(builder, builder.urem(n, four)) as loop:
        i = builder.add(builder.mul(groups, four), loop.index)
        builder.store(builder.fadd(builder.load(total), row_at(i)), total)


@intrinsic
def _add_layer(typingctx, acc, rows, codes):
    """``acc[:LANES] += rows[codes].sum(0)``, the layer sum in one vector register.

    ``rows`` is one layer's ``[N, LANES]`` slice of the table (each row
    contiguous), ``acc`` a contiguous float64 slice of the document's sums. Rows are added four at a time
    (``_add_rows``); the layer sum is then widened to float64. Codes must already be known to be < N.
    """
    sig = types.void(acc, rows, codes)

    def codegen(context, builder, sig, args):
        acc_t, rows_t, codes_t = sig.args
        acc_a = context.make_array(acc_t)(context, builder, args[0])
        rows_a = context.make_array(rows_t)(context, builder, args[1])
        codes_a = context.make_array(codes_t)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        byte_p = ir.IntType(8).as_pointer()
        f32x = ir.VectorType(ir.FloatType(), LANES)
        f64x = ir.VectorType(ir.DoubleType(), LANES)

        n = builder.extract_value(codes_a.shape, 0)
        code_stride = builder.extract_value(codes_a.strides, 0)
        row_stride = builder.extract_value(rows_a.strides, 0)
        code_base = builder.bitcast(codes_a.data, byte_p)
        row_base = builder.bitcast(rows_a.data, byte_p)
        total = cgutils.alloca_once_value(builder, ir.Constant(f32x, None))

        def row(i):
            ptr = builder.gep(code_base, [builder.mul(i, code_stride)])
            code = builder.load(builder.bitcast(ptr, ir.IntType(16).as_pointer()))
            ptr = builder.gep(row_base, [builder.mul(builder.zext(code, intp), row_stride)])
            return builder.load(builder.bitcast(ptr, f32x.as_pointer()), align=4)

        _add_rows(builder, total, n, row)

        acc_p = builder.bitcast(acc_a.data, f64x.as_pointer())
        widened = builder.fpext(builder.load(total), f64x)
        builder.store(builder.fadd(builder.load(acc_p, align=8), widened), acc_p, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _add_set_layer(typingctx, acc, rows, bits, listed):
    """``acc[:LANES] += (rows[byte sums of bits] .sum(0) + rows[BYTE_ROWS + listed].sum(0))``: a sets
    layer in one vector register, as ``_add_layer`` adds a layer of codes.

    ``rows`` is one layer's ``[BYTE_ROWS + N, LANES]`` slice: first, for each of the eight bytes of a
    layer's bits and each of its values, the sum of the weights of the neurons it sets; then the
    table's own rows, for the ``listed`` ids. The eight rows the bits pick are found in registers.
    """
    sig = types.void(acc, rows, bits, listed)

    def codegen(context, builder, sig, args):
        acc_t, rows_t, _, listed_t = sig.args
        acc_a = context.make_array(acc_t)(context, builder, args[0])
        rows_a = context.make_array(rows_t)(context, builder, args[1])
        listed_a = context.make_array(listed_t)(context, builder, args[3])
        x = args[2]
        intp = context.get_value_type(types.intp)
        byte_p = ir.IntType(8).as_pointer()
        f32x = ir.VectorType(ir.FloatType(), LANES)
        f64x = ir.VectorType(ir.DoubleType(), LANES)
        row_stride = builder.extract_value(rows_a.strides, 0)
        row_base = builder.bitcast(rows_a.data, byte_p)

        def row(index):
            ptr = builder.gep(row_base, [builder.mul(index, row_stride)])
            return builder.load(builder.bitcast(ptr, f32x.as_pointer()), align=4)

        picked = []
        for q in range(8):
            value = builder.and_(builder.lshr(x, ir.Constant(x.type, 8 * q)), ir.Constant(x.type, 255))
            picked.append(row(builder.add(builder.trunc(value, intp) if intp.width < 64 else value,
                                          ir.Constant(intp, 256 * q))))
        pairs = [builder.fadd(picked[i], picked[i + 1]) for i in range(0, 8, 2)]
        total = cgutils.alloca_once_value(
            builder, builder.fadd(builder.fadd(pairs[0], pairs[1]), builder.fadd(pairs[2], pairs[3])))
        n = builder.extract_value(listed_a.shape, 0)
        code_stride = builder.extract_value(listed_a.strides, 0)
        code_base = builder.bitcast(listed_a.data, byte_p)

        def listed_row(i):
            ptr = builder.gep(code_base, [builder.mul(i, code_stride)])
            code = builder.zext(builder.load(builder.bitcast(ptr, ir.IntType(16).as_pointer())), intp)
            return row(builder.add(code, ir.Constant(intp, BYTE_ROWS)))

        _add_rows(builder, total, n, listed_row)
        acc_p = builder.bitcast(acc_a.data, f64x.as_pointer())
        widened = builder.fpext(builder.load(total), f64x)
        builder.store(builder.fadd(builder.load(acc_p, align=8), widened), acc_p, align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def _max_code(doc):
    """The largest of a document's codes, all layers and all K of them.

    Checked for a block of documents before scoring it, so that the kernels never
    index the table out of bounds. The codes are contiguous, so this vectorizes,
    and the block is still in cache when it is scored: it costs little.
    """
    top = doc[0]
    for i in range(1, doc.shape[0]):
        top = max(top, doc[i])
    return top


@njit(parallel=True, nogil=True, fastmath=False, cache=True)
def _score_one(codes, table, layers, top_k, out):
    """One target: ``table`` is ``[L_sel, N]``, ``out`` is ``[n]``.

    Returns the largest code seen; blocks holding a code >= N are not scored.
    """
    n = codes.shape[0]
    flat = codes.reshape(n, -1)
    top = 0
    for b in prange((n + BLOCK_DOCS - 1) // BLOCK_DOCS):
        start = b * BLOCK_DOCS
        stop = min(n, start + BLOCK_DOCS)
        seen = 0
        for d in range(start, stop):
            seen = max(seen, _max_code(flat[d]))
        top = max(top, seen)
        if seen >= table.shape[1]:
            continue
        for d in range(start, stop):
            total = 0.0
            for j in range(layers.shape[0]):
                row = table[j]
                c = codes[d, layers[j]]
                a0 = a1 = a2 = a3 = np.float32(0.0)
                k = 0
                while k + 4 <= top_k:
                    a0 += row[c[k]]
                    a1 += row[c[k + 1]]
                    a2 += row[c[k + 2]]
                    a3 += row[c[k + 3]]
                    k += 4
                while k < top_k:
                    a0 += row[c[k]]
                    k += 1
                total += np.float64((a0 + a1) + (a2 + a3))
            out[d] = total
    return top


@njit(parallel=True, nogil=True, fastmath=False, cache=True)
def _score_lanes(codes, table, layers, top_k, out):
    """Several targets: ``table`` is ``[L_sel, N, W]`` with W a multiple of LANES.

    Inside a block documents are scored layer by layer, so that one layer's
    slice of the table (N * W * 4 bytes) is what stays hot, not all of it.
    Returns the largest code seen; blocks holding a code >= N are not scored.
    """
    n = codes.shape[0]
    flat = codes.reshape(n, -1)
    width = table.shape[2]
    top = 0
    for b in prange((n + BLOCK_DOCS - 1) // BLOCK_DOCS):
        start = b * BLOCK_DOCS
        stop = min(n, start + BLOCK_DOCS)
        seen = 0
        for d in range(start, stop):
            seen = max(seen, _max_code(flat[d]))
        top = max(top, seen)
        if seen >= table.shape[1]:
            continue
        acc = np.zeros((stop - start, width), np.float64)
        for j in range(layers.shape[0]):
            layer = layers[j]
            for lane in range(0, width, LANES):
                rows = table[j, :, lane:lane + LANES]
                for d in range(start, stop):
                    _add_layer(acc[d - start, lane:lane + LANES], rows, codes[d, layer, :top_k])
        for d in range(start, stop):
            for m in range(out.shape[1]):
                out[d, m] = acc[d - start, m]
    return top


@njit(inline="always")
def _byte(x, q):
    """Where byte ``q`` of a layer's bits ``x`` finds its sum in the layer's ``8 * 256`` byte sums."""
    return np.int64(256 * q) + np.int64((x >> np.uint64(8 * q)) & np.uint64(255))


@njit(inline="always")
def _list_starts(bits, d, top_k, at, starts):
    """``starts[l]``: where layer ``l``'s listed ids begin in the rest, for document ``d`` whose list begins at ``at``."""
    for layer in range(bits.shape[1]):
        starts[layer] = at
        at += top_k - np.int64(popcount(bits[d, layer]))
    starts[bits.shape[1]] = at


@njit(parallel=True, nogil=True, fastmath=False, cache=True)
def _score_sets_one(bits, rest, doc_starts, top_k, bytes_, table, layers, out):
    """One target over a sets store's rows: ``bytes_`` is ``[L_sel, 8 * 256]``, the sum of the table's
    weights of each byte of a layer's bits, ``table`` ``[L_sel, N]`` for the listed ids.

    Returns the largest listed id seen; blocks holding one >= N are not scored.
    """
    n, n_layers = bits.shape
    top = 0
    for b in prange((n + BLOCK_DOCS - 1) // BLOCK_DOCS):
        start = b * BLOCK_DOCS
        stop = min(n, start + BLOCK_DOCS)
        seen = 0
        for i in range(doc_starts[start], doc_starts[stop]):
            seen = max(seen, np.int64(rest[i]))
        top = max(top, seen)
        if seen >= table.shape[1]:
            continue
        starts = np.empty(n_layers + 1, np.int64)
        for d in range(start, stop):
            _list_starts(bits, d, top_k, doc_starts[d], starts)
            total = 0.0
            for j in range(layers.shape[0]):
                layer = layers[j]
                x = bits[d, layer]
                row = bytes_[j]
                a0 = row[_byte(x, 0)] + row[_byte(x, 1)]
                a1 = row[_byte(x, 2)] + row[_byte(x, 3)]
                a2 = row[_byte(x, 4)] + row[_byte(x, 5)]
                a3 = row[_byte(x, 6)] + row[_byte(x, 7)]
                s = (a0 + a1) + (a2 + a3)
                listed = table[j]
                for i in range(starts[layer], starts[layer + 1]):
                    s += listed[rest[i]]
                total += np.float64(s)
            out[d] = total
    return top


@njit(parallel=True, nogil=True, fastmath=False, cache=True)
def _score_sets_lanes(bits, rest, doc_starts, top_k, rows_, neurons, layers, out):
    """Several targets over a sets store's rows: ``rows_`` ``[L_sel, 8 * 256 + N, W]``, W a multiple of
    LANES, holds a layer's byte sums and then the table's rows for the listed ids, so that a layer's
    eight byte sums and its listed ids are one ``_add_layer``, as ``_score_lanes`` adds codes.
    Returns the largest listed id seen; blocks holding one >= N are not scored.
    """
    n, n_layers = bits.shape
    width = rows_.shape[2]
    top = 0
    for b in prange((n + BLOCK_DOCS - 1) // BLOCK_DOCS):
        start = b * BLOCK_DOCS
        stop = min(n, start + BLOCK_DOCS)
        seen = 0
        for i in range(doc_starts[start], doc_starts[stop]):
            seen = max(seen, np.int64(rest[i]))
        top = max(top, seen)
        if seen >= neurons:
            continue
        starts = np.empty((stop - start, n_layers + 1), np.int64)
        for d in range(start, stop):
            _list_starts(bits, d, top_k, doc_starts[d], starts[d - start])
        acc = np.zeros((stop - start, width), np.float64)
        for j in range(layers.shape[0]):
            layer = layers[j]
            for lane in range(0, width, LANES):
                rows = rows_[j, :, lane:lane + LANES]
                for d in range(start, stop):
                    at = starts[d - start]
                    _add_set_layer(acc[d - start, lane:lane + LANES], rows, bits[d, layer], rest[at[layer]:at[layer + 1]])
        for d in range(start, stop):
            for m in range(out.shape[1]):
                out[d, m] = acc[d - start, m]
    return top


def byte_sums(table: np.ndarray, common: np.ndarray) -> np.ndarray:
    """float32 ``[L_sel, 8 * 256, W]``: for each selected layer, byte ``q`` of its bits and its value ``v``,
    the sum of the weights of the neurons whose bits ``v`` sets (``common`` ``[L_sel, C]``, nagindex.codec)."""
    n_sel, _, width = table.shape
    by_bit = np.zeros((n_sel, BITS, width), np.float64)
    by_bit[:, :common.shape[1]] = np.take_along_axis(table, common.astype(np.int64)[:, :, None], axis=1)
    values = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1
    sums = np.einsum("vb,jqbw->jqvw", values.astype(np.float64), by_bit.reshape(n_sel, 8, 8, width))
    return sums.reshape(n_sel, 8 * 256, width).astype(np.float32)


@dataclass(frozen=True)
class _Plan:
    """A validated table and layer list, laid out for the kernels once per query."""

    table: np.ndarray     # [L_sel, N] for one target, else [L_sel, N, W]
    layers: np.ndarray    # int64 [L_sel]
    top_k: int
    targets: int
    neurons: int
    _bytes: dict = field(default_factory=dict, compare=False)   # byte sums of the codebook of the chunks scored last

    @classmethod
    def make(cls, table: np.ndarray, layers, top_k: int) -> _Plan:
        if not isinstance(table, np.ndarray) or table.dtype != np.float32 or table.ndim != 3:
            raise ValueError(f"table must be a float32 array [layers, neurons, targets], got "
                             f"{_describe(table)}")
        if not table.flags.c_contiguous:
            raise ValueError("table must be C-contiguous")
        n_sel, neurons, targets = table.shape
        if n_sel == 0 or neurons == 0 or targets == 0:
            raise ValueError(f"table must not be empty, got shape {table.shape}")
        if neurons > 65536:
            raise ValueError(f"table has {neurons} neurons; uint16 codes address at most 65536")
        layers = np.asarray(layers)
        if layers.ndim != 1 or not np.issubdtype(layers.dtype, np.integer):
            raise ValueError(f"layers must be a 1-D integer array, got {_describe(layers)}")
        if len(layers) != n_sel:
            raise ValueError(f"layers has {len(layers)} entries but the table has {n_sel} layers")
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if targets == 1:
            laid_out = table.reshape(n_sel, neurons)
        else:
            width = -(-targets // LANES) * LANES
            laid_out = np.zeros((n_sel, neurons, width), np.float32)
            laid_out[:, :, :targets] = table
        return cls(laid_out, layers.astype(np.int64), int(top_k), targets, neurons)

    def check(self, codes: np.ndarray | SetCodes) -> None:
        if isinstance(codes, SetCodes):
            if self.top_k != codes.top_k:
                raise ValueError(f"top_k={self.top_k}: a sets store keeps each layer's {codes.top_k} codes as a "
                                 "set, so all of them count")
            n_layers = codes.shape[1]
            if self.targets > 1 and 8 * 256 + self.neurons > 65536:
                raise ValueError(f"{self.neurons} neurons: a sets store scores several targets with at most "
                                 f"{65536 - 8 * 256} neurons a layer")
        else:
            if not isinstance(codes, np.ndarray) or codes.dtype != np.uint16 or codes.ndim != 3:
                raise ValueError(f"codes must be a uint16 array [docs, layers, K] or SetCodes, got {_describe(codes)}")
            if not codes.flags.c_contiguous:
                raise ValueError("codes must be C-contiguous")
            _, n_layers, k = codes.shape
            if self.top_k > k:
                raise ValueError(f"top_k={self.top_k} exceeds the {k} codes stored per layer")
        if self.layers.min() < 0 or self.layers.max() >= n_layers:
            raise ValueError(f"layers must lie in [0, {n_layers}), got {self.layers.tolist()}")

    def score_into(self, codes: np.ndarray | SetCodes, out: np.ndarray, first_row: int = 0) -> None:
        """Score ``codes`` (already checked) into ``out`` ``[len(codes), targets]``."""
        if not len(codes):
            return
        if isinstance(codes, SetCodes):
            self._score_sets(codes, out, first_row)
            return
        if self.targets == 1:
            top = _score_one(codes, self.table, self.layers, self.top_k, out[:, 0])
        else:
            top = _score_lanes(codes, self.table, self.layers, self.top_k, out)
        if top >= self.neurons:
            row = int(np.flatnonzero((codes >= self.neurons).any(axis=(1, 2)))[0])
            raise CodeOutOfRange(first_row + row, int(codes[row].max()), self.neurons)

    def _score_sets(self, codes: SetCodes, out: np.ndarray, first_row: int) -> None:
        sums = self._byte_sums(codes.codebook)
        args = (codes.bits, codes.rest, codes.starts, codes.top_k)
        if self.targets == 1:
            top = _score_sets_one(*args, sums, self.table, self.layers, out[:, 0])
        else:
            top = _score_sets_lanes(*args, sums, self.neurons, self.layers, out)
        if top >= self.neurons:
            at = int(np.flatnonzero(codes.rest >= self.neurons)[0])
            raise CodeOutOfRange(first_row + int(np.searchsorted(codes.starts, at, "right")) - 1,
                                 int(codes.rest[at]), self.neurons)

    def _byte_sums(self, codebook: Codebook) -> np.ndarray:
        """The table's byte sums for a shard's codebook, kept while its chunks stream by: ``[L_sel, 8 * 256]``
        for one target, else followed by the table's own rows, ``[L_sel, 8 * 256 + N, W]``."""
        cached = self._bytes.get("of")
        if cached is None or cached[0] is not codebook:
            if self.targets == 1:
                sums = byte_sums(self.table[:, :, None], codebook.common[self.layers])[:, :, 0]
            else:
                sums = np.concatenate([byte_sums(self.table, codebook.common[self.layers]), self.table], axis=1)
            cached = self._bytes["of"] = (codebook, np.ascontiguousarray(sums))
        return cached[1]


def score_codes(codes: np.ndarray | SetCodes, table: np.ndarray, layers, top_k: int) -> np.ndarray:
    """Score documents against ``M`` targets at once; returns float32 ``[n, M]``.

    ``codes`` uint16 ``[n, L, K]``, or a sets store's rows as stored (nagindex.codec); ``table`` float32 ``[L_sel, N, M]``, one
    weight per (selected layer, neuron, target); ``layers`` the ``L_sel`` indices
    into the L axis of ``codes`` that the table's layers stand for; ``top_k`` how
    many of each layer's codes (in stored, descending-impact order) count.
    Scores are raw sums: dividing by the number of layers is the caller's.
    """
    plan = _Plan.make(table, layers, top_k)
    plan.check(codes)
    out = np.empty((len(codes), plan.targets), np.float32)
    plan.score_into(codes, out)
    return out


def prefetched(chunks: Iterable[T]) -> Iterator[T]:
    """The items of ``chunks``, each next one read in a background thread while the caller works
    on the current one: reading and scoring overlap, and only two chunks are held at a time."""
    it = iter(chunks)
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(next, it, _END)
        while (item := pending.result()) is not _END:
            pending = reader.submit(next, it, _END)
            yield item


@contextlib.contextmanager
def damage_reported(report: Callable[[CodeOutOfRange], Exception]) -> Iterator[None]:
    """Turn a code the kernels found out of range into ``report(error)``: the user's message,
    naming the file and document, instead of a kernel's traceback."""
    try:
        yield
    except CodeOutOfRange as e:
        raise report(e) from None


def score_chunks(chunks: Iterable[tuple[int, np.ndarray]], table: np.ndarray, layers,
                 top_k: int) -> Iterator[tuple[int, np.ndarray]]:
    """Score a stream of ``(first_row, codes)`` chunks, contiguous and in order, chunk by chunk.

    Yields ``(first_row, sums)`` with float32 ``sums`` ``[len(codes), M]``:
    the whole-pool scan (``CodeStore.iter_codes`` yields such chunks) for a
    caller that keeps only what it needs of each chunk. Only two chunks of
    codes are held at a time, and the next one is read in a background thread
    while the numba kernel, which releases the GIL, scores the current one (and
    while the caller uses its scores), so reading and scoring overlap instead
    of adding up.

    The kernel runs on one numba thread fewer than the caller's setting, so that
    the reader keeps a core: OpenMP workers spin for a while after each chunk
    and would take it. On the two-core machine this was measured on, that
    scored about 1.5x more documents per second than two kernel threads.
    """
    return _scored(_Plan.make(table, layers, top_k), chunks)


def _scored(plan: _Plan, chunks: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    expected = 0
    threads = numba.get_num_threads()
    numba.set_num_threads(max(1, threads - 1))
    try:
        for first_row, codes in prefetched(chunks):
            if first_row != expected:
                raise ValueError(f"chunk starts at row {first_row}, expected {expected}: "
                                 "chunks must be contiguous and in order")
            plan.check(codes)
            out = np.empty((len(codes), plan.targets), np.float32)
            plan.score_into(codes, out, first_row)
            expected = first_row + len(codes)
            yield first_row, out
    finally:
        numba.set_num_threads(threads)


def score_stream(chunks: Iterable[tuple[int, np.ndarray]], n: int, table: np.ndarray,
                 layers, top_k: int) -> np.ndarray:
    """Every score of chunks covering rows ``[0, n)``: float32 ``[n, M]`` (see :func:`score_chunks`)."""
    return gather_chunks(score_chunks(chunks, table, layers, top_k), n, table.shape[2])


def gather_chunks(scored: Iterable[tuple[int, np.ndarray]], n: int, targets: int) -> np.ndarray:
    """The chunks' scores in one ``[n, targets]`` array, checking that they cover ``[0, n)``."""
    out = np.empty((n, targets), np.float32)
    expected = 0
    for first_row, sums in scored:
        if first_row + len(sums) > n:
            raise ValueError(f"chunk at row {first_row} with {len(sums)} rows runs past n={n}")
        out[first_row:first_row + len(sums)] = sums
        expected = first_row + len(sums)
    if expected != n:
        raise ValueError(f"chunks covered {expected} rows, expected n={n}")
    return out


def numpy_gather(codes: np.ndarray, table: np.ndarray, layers, top_k: int) -> np.ndarray:
    """The same scores by plain NumPy fancy indexing, layer by layer.

    The reference the kernels are tested against and the baseline they are
    measured against; it sums with the kernels' precision (float32 within a
    layer, float64 across layers), so integer tables must match it exactly.
    """
    out = np.zeros((len(codes), table.shape[2]), np.float64)
    for j, layer in enumerate(layers):
        out += table[j][codes[:, layer, :top_k]].sum(axis=1)
    return out.astype(np.float32)


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__

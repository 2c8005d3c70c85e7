#!/usr/bin/env python3
"""make_seeds.py — writes the seed inputs of fuzz_malloc to corpus/malloc/.

The seeds are binary programs in fuzz_malloc.c's encoding (an opcode byte,
a slot byte, then operands); this script spells out what each one does, so
that the committed files can be read and regenerated.  Run it from any
directory after changing the encoding; regression seeds (crash-*) that
libFuzzer found are kept as they are and not written here.
"""
import os
import struct

(MALLOC, CALLOC, REALLOC, REALLOC_CHAIN, POSIX_MEMALIGN, ALIGNED_ALLOC,
 MEMALIGN, VALLOC, PVALLOC, FREE, FREE_BULK, USABLE, BAD_INTERIOR,
 DOUBLE_FREE, BAD_WILD, TRIM, DRAIN, VALIDATE) = range(18)


def size(cls, r):
    """A size operand: class (see draw_size) and a 16-bit parameter."""
    return struct.pack(">BH", cls, r)


def tiny(n):            # n bytes, 0..63
    return size(0, n)


def subpage(n):         # 64..4095 bytes
    return size(1, n - 64)


def pages(k, delta=0):  # k pages + delta bytes, k 1..1024, delta -16..15
    return size(3, ((k - 1) << 5) | (delta + 16))


def pow2_pages(o):      # 2^o pages
    return size(4, o)


def around_4m(delta):   # 4 MiB + delta, delta -8192..8191
    return size(5, delta + 8192)


def huge(extra16):      # 4 MiB + 1 + 16 * extra16: glibc
    return size(6, extra16)


def op(code, slot, *operands):
    return bytes([code, slot]) + b"".join(operands)


def align(log2):
    return bytes([log2])


def odd_align(v):       # any value below 16 MiB
    return bytes([0xff]) + v.to_bytes(3, "big")


SEEDS = {
    # malloc on both sides of page multiples and the cached orders, some
    # frees in between, a check of every block and of the zone.
    "page-edges": b"".join([
        op(MALLOC, 0, subpage(4095)), op(MALLOC, 1, pages(1)), op(MALLOC, 2, pages(1, 1)),
        op(MALLOC, 3, pages(2, -1)), op(MALLOC, 4, pages(2)), op(MALLOC, 5, pages(3)),
        op(MALLOC, 6, pages(5, 7)), op(MALLOC, 7, pages(7, -16)), op(FREE, 4),
        op(CALLOC, 8, b"\x03", pages(6), b"\x00"), op(USABLE, 5), op(FREE, 1),
        op(MALLOC, 9, tiny(0)), op(VALIDATE, 0), op(DRAIN, 0), op(VALIDATE, 0),
    ]),
    # One block through a realloc chain: up within a page, up to 4 MiB and
    # past it (to glibc and back), down in place, and to 0.
    "realloc-chain": b"".join([
        op(MALLOC, 0, subpage(100)),
        op(REALLOC_CHAIN, 0, b"\x07", pages(1), pages(3, 5), pages(8), around_4m(0),
           huge(1000), pages(2), subpage(200)),
        op(REALLOC, 1, pages(4)), op(REALLOC, 1, pages(4, -15)), op(REALLOC, 1, pages(1)),
        op(REALLOC, 1, tiny(0)), op(VALIDATE, 0),
    ]),
    # Every aligned entry point, alignments 1 B to 8 MiB, and the invalid ones.
    "aligned": b"".join([
        op(POSIX_MEMALIGN, 0, align(12), pages(1)), op(POSIX_MEMALIGN, 1, align(16), pages(3)),
        op(POSIX_MEMALIGN, 2, align(22), pages(1)), op(POSIX_MEMALIGN, 3, align(23), pages(2)),
        op(POSIX_MEMALIGN, 4, align(2), pages(1)), op(POSIX_MEMALIGN, 5, odd_align(24), pages(1)),
        op(ALIGNED_ALLOC, 6, align(13), pages(2, 1)), op(ALIGNED_ALLOC, 7, odd_align(3000), pages(1)),
        op(MEMALIGN, 8, odd_align(5000), pages(1)), op(MEMALIGN, 9, align(5), subpage(300)),
        op(VALLOC, 10, tiny(10)), op(VALLOC, 11, pages(9)), op(PVALLOC, 12, tiny(1)),
        op(PVALLOC, 13, pages(4, 3)), op(VALIDATE, 0),
    ]),
    # Bad pointers in on_invalid:report mode: interior (page-aligned and
    # not), a free right after a free, wild pointers, a bulk free holding a
    # duplicate and an interior pointer.
    "bad-frees": b"".join([
        op(MALLOC, 0, pages(4)), op(MALLOC, 1, pages(1)), op(MALLOC, 2, pages(3)),
        op(BAD_INTERIOR, 0, b"\x00\x00\x03", b"\x00"), op(BAD_INTERIOR, 0, b"\x00\x00\x10", b"\x01"),
        op(BAD_INTERIOR, 2, b"\x00\x00\x05", b"\x02"), op(BAD_INTERIOR, 2, b"\x00\x00\x07", b"\x03"),
        op(DOUBLE_FREE, 1, b"\x00"), op(MALLOC, 1, pages(1)), op(DOUBLE_FREE, 1, b"\x01"),
        op(BAD_WILD, 0, b"\x00\x00\x00\x09", b"\x00"), op(BAD_WILD, 0, b"\x00\x10\x00\x40", b"\x05"),
        op(MALLOC, 3, pages(2)), op(MALLOC, 4, pages(5)),
        op(FREE_BULK, 0, b"\x02", b"\x03\x04", b"\x03", b"\x00", b"\x00\x00\x03"),
        op(VALIDATE, 0),
    ]),
    # Twenty 4 MiB blocks in a 64 MiB region: the zone runs dry and the
    # rest fall back to glibc; then trim, and calloc out of purged pages.
    "exhaust": b"".join(
        [op(MALLOC, i, pow2_pages(10)) for i in range(20)] +
        [op(FREE_BULK, 0, b"\x0b", bytes(range(0, 22, 2)), b"\x00"),
         op(TRIM, 0, b"\x00\x00"), op(CALLOC, 30, b"\x01", around_4m(0), b"\x00"),
         op(CALLOC, 31, b"\x02", pages(2), b"\x00"), op(VALIDATE, 0)]),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "malloc")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")

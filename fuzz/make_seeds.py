#!/usr/bin/env python3
"""Writes the seed corpus of the `request` fuzz target (fuzz/fuzz_targets/request.rs).

Python 3 standard library only: every image is built by hand here (PNG via zlib + struct, GIF
with a tiny LZW writer, BMP, TIFF, WebP lossless, baseline JPEG). Each seed is one selector byte
(which Content-Type the target uses) followed by the request body:

    0 multipart/form-data; boundary=X    1 image/jpeg    2 application/octet-stream
    3 application/json                   4 (no Content-Type)

(byte 0 / 5) % 2 turns JPEG DCT scaling off when 1 (selector 6 = image/jpeg without it).

Every image is written raw (selector 1) and wrapped in a multipart body with a field named
`file` (selector 0); malformed multipart bodies follow. If a samples directory exists
(default $SHARED_DIR/samples, else ../shared/samples beside the repository), small JPEGs in it are copied in too, at run time only: the corpus
directory is git-ignored, so they are never committed.

    python3 fuzz/make_seeds.py [--out DIR] [--samples DIR] [--max-sample-bytes N] [--clean]
"""

import argparse
import os
import shutil
import struct
import sys
import zlib

MULTIPART, IMAGE_JPEG, OCTET_STREAM, JSON, NO_CONTENT_TYPE = range(5)
NO_DCT = 5  # added to a selector: decode large JPEGs at full size
BOUNDARY = b"X"  # must match the target's fixed "multipart/form-data; boundary=X"
CRLF = b"\r\n"

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "corpus", "request")
DEFAULT_SAMPLES = os.path.join(
    os.environ.get("SHARED_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"),
    "samples",
)


# ---------------------------------------------------------------------------------------- PNG

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_filter(rows, bpp, filters):
    """Filters raw scanlines (bytes) with the given filter type per row (cycled)."""
    out = bytearray()
    prior = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        ftype = filters[y % len(filters)]
        out.append(ftype)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, paeth(a, b, c))[ftype]
            out.append((x - pred) & 0xFF)
        prior = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png(width, height, color_type, bit_depth, pixels, palette=None, trns=None, interlace=False,
        filters=(0,), extra_chunks=()):
    """pixels: list of rows, each a list of per-pixel sample tuples (ints in the bit depth)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bits_pp = channels * bit_depth
    bpp = max(1, bits_pp // 8)

    def pack_row(samples):
        if bit_depth == 16:
            return b"".join(struct.pack(">H", s) for px in samples for s in px)
        if bit_depth == 8:
            return bytes(s for px in samples for s in px)
        acc, nbits, out = 0, 0, bytearray()
        for px in samples:
            for s in px:
                acc = (acc << bit_depth) | s
                nbits += bit_depth
                if nbits == 8:
                    out.append(acc)
                    acc, nbits = 0, 0
        if nbits:
            out.append(acc << (8 - nbits))
        return bytes(out)

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = [[pixels[y][x] for x in range(x0, width, dx)] for y in range(y0, height, dy)]
            if sub and sub[0]:
                raw += png_filter([pack_row(r) for r in sub], bpp, filters)
    else:
        raw = png_filter([pack_row(r) for r in pixels], bpp, filters)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, data in extra_chunks:
        out += png_chunk(kind, data)
    if palette is not None:
        out += png_chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return out


def grid(width, height, f):
    return [[f(x, y) for x in range(width)] for y in range(height)]


# ---------------------------------------------------------------------------------------- GIF

def gif_lzw(indices, min_code_size):
    """LZW stream that only emits literals, with a clear code often enough that the code size
    never grows (valid GIF, trivially decodable)."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    code_size = min_code_size + 1
    # After a clear, entries are added from eoi+1; the code size grows when next reaches 2^size.
    per_clear = (1 << code_size) - (eoi + 1)  # literals safe between clears
    codes = []
    for i, p in enumerate(indices):
        if i % per_clear == 0:
            codes.append(clear)
        codes.append(p)
    codes.append(eoi)
    acc, nbits, out = 0, 0, bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += code_size
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    blocks = bytearray([min_code_size])
    for i in range(0, len(out), 255):
        chunk = out[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks) + b"\x00"


def gif_animated():
    """4x4, global palette of 4, two frames (second one smaller, offset, with a local palette
    and transparency), NETSCAPE loop extension."""
    gct = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    out = b"GIF89a" + struct.pack("<HHBBB", 4, 4, 0x81, 0, 0) + gct
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # GCE: 100 ms, no transparency
    out += b"\x2c" + struct.pack("<HHHHB", 0, 0, 4, 4, 0)
    out += gif_lzw([(x + y) % 4 for y in range(4) for x in range(4)], 2)
    out += b"\x21\xf9\x04\x05\x0a\x00\x03\x00"  # GCE: transparent index 3
    lct = bytes([255, 255, 0, 0, 255, 255, 255, 0, 255, 9, 9, 9])
    out += b"\x2c" + struct.pack("<HHHHB", 1, 1, 2, 2, 0x81) + lct
    out += gif_lzw([0, 1, 2, 3], 2)
    return out + b"\x3b"


# The classic smallest 1x1 GIF (white pixel).
GIF_1X1 = bytes.fromhex(
    "474946383961010001008000 00ffffff000000 2c00000000010001000002024401003b".replace(" ", ""))


# ---------------------------------------------------------------------------------------- BMP

def bmp(width, height, bits, pixels, palette=None, top_down=False):
    """Uncompressed BMP (BITMAPINFOHEADER). 24/32-bit pixels are (r, g, b); 8-bit are indices."""
    rows = []
    for row in pixels:
        if bits == 24:
            data = b"".join(bytes((b, g, r)) for r, g, b in row)
        elif bits == 32:
            data = b"".join(bytes((b, g, r, 255)) for r, g, b in row)
        else:
            data = bytes(row)
        rows.append(data + b"\x00" * (-len(data) % 4))
    if not top_down:
        rows.reverse()
    image = b"".join(rows)
    pal = b"".join(bytes((b, g, r, 0)) for r, g, b in (palette or []))
    offset = 14 + 40 + len(pal)
    header = b"BM" + struct.pack("<IHHI", offset + len(image), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits, 0,
                       len(image), 2835, 2835, len(palette or []), 0)
    return header + info + pal + image


# --------------------------------------------------------------------------------------- TIFF

def tiff_rgb(width, height, pixels):
    """Little-endian, uncompressed, one strip, 8-bit RGB."""
    data = b"".join(bytes(px) for row in pixels for px in row)
    entries = [  # (tag, type, count, value) — type 3 SHORT, 4 LONG; sorted by tag
        (256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 1),
        (262, 3, 1, 2), (273, 4, 1, None), (277, 3, 1, 3), (278, 3, 1, height),
        (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    bps_offset = ifd_offset + ifd_size
    strip_offset = bps_offset + 6
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bps_offset
            ifd += struct.pack("<HHII", tag, kind, count, value)
        elif tag == 273:
            ifd += struct.pack("<HHII", tag, kind, count, strip_offset)
        elif kind == 3:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + struct.pack("<HHH", 8, 8, 8) + data


# --------------------------------------------------------------------------------------- WebP

def webp_lossless_flat(width, height, argb):
    """VP8L image of one colour: no transforms, no colour cache, and five one-symbol prefix codes,
    so the pixels cost zero bits."""
    bits = []

    def put(value, n):
        bits.extend((value >> i) & 1 for i in range(n))

    a, r, g, b = argb
    put(width - 1, 14)
    put(height - 1, 14)
    put(1 if a != 255 else 0, 1)  # alpha_is_used
    put(0, 3)                     # version
    put(0, 1)                     # no transform
    put(0, 1)                     # no colour cache
    put(0, 1)                     # no meta prefix codes
    for symbol in (g, r, b, a):   # green, red, blue, alpha: simple code, one 8-bit symbol
        put(1, 1)
        put(0, 1)
        put(1, 1)
        put(symbol, 8)
    put(1, 1)                     # distance: simple code, one 1-bit symbol (0)
    put(0, 1)
    put(0, 1)
    put(0, 1)
    data = bytearray(b"\x2f")
    for i in range(0, len(bits), 8):
        data.append(sum(bit << j for j, bit in enumerate(bits[i:i + 8])))
    chunk = b"VP8L" + struct.pack("<I", len(data)) + bytes(data) + b"\x00" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# --------------------------------------------------------------------------------------- JPEG

def jpeg_flat(width, height, components, luma_sampling=(1, 1)):
    """Baseline JPEG whose every block is DC 0 with no AC (mid grey): Huffman tables with one
    1-bit code each, so every block is the two bits `00`. components: 1 (grey) or 3 (YCbCr, the
    luma sampled `luma_sampling` (h, v) times as densely as the chroma, e.g. (2, 2) for 4:2:0)."""
    def seg(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    h, v = luma_sampling if components == 3 else (1, 1)
    out = b"\xff\xd8"
    out += seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += seg(0xDB, b"\x00" + bytes([1] * 64))
    sof = struct.pack(">BHHB", 8, height, width, components)
    for c in range(components):
        sof += bytes([c + 1, (h << 4 | v) if c == 0 else 0x11, 0])
    out += seg(0xC0, sof)
    counts = bytes([1] + [0] * 15)
    out += seg(0xC4, b"\x00" + counts + b"\x00")  # DC table 0: symbol 0 (diff category 0)
    out += seg(0xC4, b"\x10" + counts + b"\x00")  # AC table 0: symbol 0x00 (EOB)
    sos = bytes([components]) + b"".join(bytes([c + 1, 0x00]) for c in range(components))
    out += seg(0xDA, sos + b"\x00\x3f\x00")
    if components == 1:
        blocks = ((width + 7) // 8) * ((height + 7) // 8)
    else:
        mcus = ((width + 8 * h - 1) // (8 * h)) * ((height + 8 * v - 1) // (8 * v))
        blocks = mcus * (h * v + 2)
    nbits = 2 * blocks
    data = bytes(nbits // 8) + (bytes([0xFF >> (nbits % 8)]) if nbits % 8 else b"")
    return out + data + b"\xff\xd9"


# ---------------------------------------------------------------------------------- multipart

def part(name, data, filename=None, content_type=None):
    disposition = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    headers = disposition + CRLF
    if content_type is not None:
        headers += b"Content-Type: " + content_type + CRLF
    return b"--" + BOUNDARY + CRLF + headers + CRLF + data + CRLF


def multipart(*parts):
    return b"".join(parts) + b"--" + BOUNDARY + b"--" + CRLF


def file_part(data, filename=b"image", content_type=b"application/octet-stream"):
    return part(b"file", data, filename, content_type)


# --------------------------------------------------------------------------------------- main

def images():
    rgb2 = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 255)]]
    yield "png_rgb_2x2", "image/png", png(2, 2, 2, 8, rgb2)
    yield "png_gray_3x3", "image/png", png(3, 3, 0, 8, grid(3, 3, lambda x, y: ((x * 3 + y) * 28,)))
    yield "png_gray16_2x2", "image/png", png(2, 2, 0, 16, [[(0,), (65535,)], [(32768,), (1234,)]])
    yield "png_rgb16_2x2", "image/png", png(
        2, 2, 2, 16, [[(65535, 0, 0), (0, 65535, 0)], [(0, 0, 65535), (40000, 20000, 10000)]])
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    yield "png_palette_4x4", "image/png", png(
        4, 4, 3, 8, grid(4, 4, lambda x, y: ((x + y) % 4,)), palette=palette)
    yield "png_palette2bit_trns_5x3", "image/png", png(
        5, 3, 3, 2, grid(5, 3, lambda x, y: ((x * y) % 4,)), palette=palette,
        trns=b"\x00\x80")
    yield "png_rgba_2x2", "image/png", png(
        2, 2, 6, 8, [[(255, 0, 0, 255), (0, 255, 0, 128)], [(0, 0, 255, 0), (9, 9, 9, 9)]])
    yield "png_graya_2x2", "image/png", png(2, 2, 4, 8, [[(0, 255), (255, 0)], [(128, 128), (1, 2)]])
    yield "png_gray1bit_9x2", "image/png", png(9, 2, 0, 1, grid(9, 2, lambda x, y: ((x ^ y) & 1,)))
    yield "png_filters_5x5", "image/png", png(
        5, 5, 2, 8, grid(5, 5, lambda x, y: (x * 50, y * 50, (x * y * 10) % 256)),
        filters=(0, 1, 2, 3, 4))
    yield "png_interlaced_9x9", "image/png", png(
        9, 9, 6, 8, grid(9, 9, lambda x, y: (x * 28, y * 28, 128, 255 - x)), interlace=True,
        filters=(4, 3))
    yield "png_wide_600x2", "image/png", png(600, 2, 0, 8, grid(600, 2, lambda x, y: (x % 256,)))
    yield "png_tall_2x600", "image/png", png(2, 600, 2, 8, grid(2, 600, lambda x, y: (y % 256, 0, x * 255)))
    yield "png_gamma_text_2x2", "image/png", png(
        2, 2, 2, 8, rgb2, extra_chunks=[(b"gAMA", struct.pack(">I", 45455)),
                                        (b"tEXt", b"Comment\x00fuzz seed")])
    yield "gif_1x1", "image/gif", GIF_1X1
    yield "gif_animated_4x4", "image/gif", gif_animated()
    yield "bmp_24_2x2", "image/bmp", bmp(2, 2, 24, rgb2)
    yield "bmp_32_topdown_3x2", "image/bmp", bmp(
        3, 2, 32, grid(3, 2, lambda x, y: (x * 100, y * 200, 50)), top_down=True)
    yield "bmp_8_palette_5x3", "image/bmp", bmp(
        5, 3, 8, grid(5, 3, lambda x, y: (x + y) % 4), palette=palette)
    yield "tiff_rgb_2x2", "image/tiff", tiff_rgb(2, 2, rgb2)
    yield "webp_lossless_2x2", "image/webp", webp_lossless_flat(2, 2, (255, 200, 100, 50))
    yield "webp_lossless_alpha_1x1", "image/webp", webp_lossless_flat(1, 1, (128, 1, 2, 3))
    yield "jpeg_gray_8x8", "image/jpeg", jpeg_flat(8, 8, 1)
    yield "jpeg_ycbcr_16x8", "image/jpeg", jpeg_flat(16, 8, 3)
    yield "jpeg_ycbcr420_20x12", "image/jpeg", jpeg_flat(20, 12, 3, (2, 2))
    # Shorter side >= 1020 px: large enough for the DCT-scaled JPEG path (grey and 4:2:0 colour).
    yield "jpeg_gray_1024x1030", "image/jpeg", jpeg_flat(1024, 1030, 1)
    yield "jpeg_ycbcr420_1100x1024", "image/jpeg", jpeg_flat(1100, 1024, 3, (2, 2))


def malformed(png_bytes):
    """Multipart bodies that are broken, or valid but without a usable image."""
    disp = b'Content-Disposition: form-data; name="file"; filename="a.png"'
    yield "mp_no_closing_boundary", file_part(png_bytes)
    yield "mp_empty_body", b""
    yield "mp_only_closing", b"--X--\r\n"
    yield "mp_no_file_field", multipart(part(b"image", png_bytes, b"a.png"), part(b"note", b"hi"))
    yield "mp_empty_file", multipart(file_part(b""))
    yield "mp_text_then_file", multipart(part(b"note", b"hello"), file_part(png_bytes))
    yield "mp_two_files", multipart(file_part(png_bytes), file_part(GIF_1X1, b"b.gif"))
    yield "mp_file_not_image", multipart(file_part(b"not an image at all", b"a.txt", b"text/plain"))
    yield "mp_preamble_epilogue", b"preamble\r\n" + multipart(file_part(png_bytes)) + b"epilogue"
    yield "mp_lf_only", (b"--X\n" + disp + b"\n\n" + png_bytes + b"\n--X--\n")
    yield "mp_no_headers", b"--X\r\n\r\n" + png_bytes + b"\r\n--X--\r\n"
    yield "mp_header_no_colon", b"--X\r\nContent-Disposition form-data\r\n\r\nabc\r\n--X--\r\n"
    yield "mp_unterminated_headers", b"--X\r\n" + disp + CRLF + b"Content-Type: image/png"
    yield "mp_unquoted_name", (b"--X\r\nContent-Disposition: form-data; name=file\r\n\r\n"
                               + png_bytes + b"\r\n--X--\r\n")
    yield "mp_filename_star", (b"--X\r\nContent-Disposition: form-data; name=\"file\"; "
                               b"filename*=UTF-8''%C3%A9.png\r\n\r\n" + png_bytes + b"\r\n--X--\r\n")
    yield "mp_boundary_in_data", multipart(file_part(b"--X" + png_bytes + b"\r\n--Y"))
    yield "mp_wrong_boundary", b"--Y\r\n" + disp + b"\r\n\r\n" + png_bytes + b"\r\n--Y--\r\n"
    yield "mp_17_parts", multipart(*[part(b"f%d" % i, b"x") for i in range(16)], file_part(png_bytes))
    yield "mp_truncated_image", multipart(file_part(png_bytes[: len(png_bytes) // 2]))
    yield "mp_huge_header", (b"--X\r\n" + disp + b"\r\nX-Long: " + b"a" * 3000 + b"\r\n\r\n"
                             + png_bytes + b"\r\n--X--\r\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="corpus directory (default: %(default)s)")
    ap.add_argument("--samples", default=DEFAULT_SAMPLES,
                    help="copy small JPEGs from here if it exists (default: %(default)s)")
    ap.add_argument("--max-sample-bytes", type=int, default=32 * 1024,
                    help="largest sample JPEG copied; big seeds slow the fuzzer (default: %(default)s)")
    ap.add_argument("--clean", action="store_true", help="empty the corpus directory first")
    args = ap.parse_args()

    if args.clean and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out, exist_ok=True)
    written = 0

    def write(name, selector, body):
        nonlocal written
        with open(os.path.join(args.out, "seed_" + name), "wb") as f:
            f.write(bytes([selector]) + body)
        written += 1

    all_images = list(images())
    for name, mime, data in all_images:
        write(name + "_raw", IMAGE_JPEG, data)
        write(name + "_multipart", MULTIPART, multipart(file_part(data, name.encode(), mime.encode())))
        if name.startswith("jpeg_") and "1024" in name:
            write(name + "_raw_nodct", IMAGE_JPEG + NO_DCT, data)
    png_bytes = all_images[0][2]
    write("png_rgb_2x2_octet", OCTET_STREAM, png_bytes)
    write("png_rgb_2x2_json", JSON, png_bytes)
    write("png_rgb_2x2_no_type", NO_CONTENT_TYPE, png_bytes)
    write("json_body", JSON, b'{"file": "aGVsbG8="}')
    for name, body in malformed(png_bytes):
        write(name, MULTIPART, body)

    copied = 0
    if os.path.isdir(args.samples):
        for entry in sorted(os.listdir(args.samples)):
            path = os.path.join(args.samples, entry)
            if not entry.lower().endswith((".jpg", ".jpeg")) or not os.path.isfile(path):
                continue
            if os.path.getsize(path) > args.max_sample_bytes:
                continue
            with open(path, "rb") as f:
                data = f.read()
            if not data.startswith(b"\xff\xd8"):
                continue
            stem = "sample_" + "".join(c if c.isalnum() else "_" for c in entry)
            write(stem + "_raw", IMAGE_JPEG, data)
            write(stem + "_multipart", MULTIPART, multipart(file_part(data, entry.encode(), b"image/jpeg")))
            copied += 1
    print(f"wrote {written} seeds to {args.out} ({copied} sample JPEG(s) from {args.samples})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

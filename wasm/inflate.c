/*
 * ips's raw-deflate inflater: libdeflate's decompressor (vendor/libdeflate, MIT), built to
 * WebAssembly by scripts/build-inflate-wasm.sh into src/iceberg/inflate-wasm-module.ts.
 *
 * Why: an Avro block of a manifest as PyIceberg writes it holds one entry (~500 bytes, its own
 * dynamic Huffman tables), and zlib spends most of its time per block building those tables.
 * libdeflate builds them faster; in WebAssembly it still inflates such a block in about two thirds of
 * what Node's zlib takes (bench/README.md, manifest-decode).
 *
 * Freestanding: no libc, no allocator. One decompressor lives in static memory; the JavaScript
 * side (src/iceberg/inflate-wasm.ts) owns the rest of linear memory and passes the input and
 * output regions.
 */
#define FREESTANDING 1
#include "lib/utils.c"
#include "lib/deflate_decompress.c"

static struct libdeflate_decompressor decompressor;

/*
 * Inflates the raw deflate stream in[0, in_len) into out[0, out_cap). Returns the output length
 * (>= 0), or -1 for corrupt or truncated data, -3 when the output needs more than out_cap bytes
 * (libdeflate's LIBDEFLATE_BAD_DATA and LIBDEFLATE_INSUFFICIENT_SPACE, negated). Bytes after the
 * stream's final block are ignored, as zlib ignores them.
 */
__attribute__((export_name("inflate")))
int ips_inflate(const void *in, int in_len, void *out, int out_cap)
{
	size_t in_used = 0, out_len = 0;
	enum libdeflate_result r;

	if (in_len < 0 || out_cap < 0)
		return -1;
	r = libdeflate_deflate_decompress_ex(&decompressor, in, (size_t)in_len,
					     out, (size_t)out_cap,
					     &in_used, &out_len);
	if (r == LIBDEFLATE_SUCCESS)
		return (int)out_len;
	return -(int)r;
}

package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"slices"
	"sync"
)

// Bulk chunks travel as standard padded base64 (BulkChunk.Data), and on a
// bulk stream that encoding is most of what either side spends per byte that
// a plain HTTP GET does not. AppendBase64 and AppendBase64Decode produce
// exactly what encoding/base64.StdEncoding's AppendEncode and AppendDecode
// produce (fuzz-tested against them), only faster on long inputs: they take
// 12 input bytes (encode) or 16 characters (decode) per step through small
// lookup tables and 64-bit loads and stores, and leave the last few bytes,
// padding and anything unusual (line ends, bad characters) to the standard
// library, which therefore also words every error.

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// base64Pairs maps 12 bits to their two characters, the first in the low
// byte, so that four pairs make one little-endian 64-bit store (8 KiB: it
// stays in the L1 cache).
var base64Pairs = func() (t [1 << 12]uint16) {
	for v := range t {
		t[v] = uint16(base64Alphabet[v>>6]) | uint16(base64Alphabet[v&63])<<8
	}
	return t
}()

// base64Valid marks a pair of alphabet characters in base64Pairs12's
// table; it is zero for every other pair.
const base64Valid = 1 << 15

// base64Pairs12 returns the table that maps two characters, loaded as a
// little-endian uint16 (the first in the low byte), to their 12 bits ORed
// with base64Valid, or to 0 if either is not in the alphabet. It takes
// 128 KiB (the 64 × 64 valid pairs, all that valid input reads, lie in about
// ten pages of it), so it is made on first use: a server never decodes.
var base64Pairs12 = sync.OnceValue(func() *[1 << 16]uint16 {
	t := new([1 << 16]uint16)
	for v0 := range len(base64Alphabet) {
		for v1 := range len(base64Alphabet) {
			t[uint16(base64Alphabet[v0])|uint16(base64Alphabet[v1])<<8] = uint16(v0<<6|v1) | base64Valid
		}
	}
	return t
})

// AppendBase64 appends the standard padded base64 of src to dst, exactly as
// base64.StdEncoding.AppendEncode does.
func AppendBase64(dst, src []byte) []byte {
	n := base64.StdEncoding.EncodedLen(len(src))
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	si, o := base64EncodeBlocks(out, src)
	// Fewer than 8 bytes left, at a 3-byte boundary: the standard encoder
	// does the rest and the padding.
	base64.StdEncoding.Encode(out[o:], src[si:])
	return dst[:len(dst)+n]
}

// base64EncodeBlocks encodes 6 bytes to 8 characters at a time from src
// into out (12 to 16 while it can) as long as 8 bytes are left: each step
// loads 8. It returns the bytes and characters it did. It is its own
// function so that the loop keeps its few variables in registers.
func base64EncodeBlocks(out, src []byte) (int, int) {
	in, put := src, out
	// The second load of a step reads 8 bytes at in[6:]: 14 bytes left.
	for len(in) >= 14 && len(put) >= 16 {
		a := binary.BigEndian.Uint64(in)
		b := binary.BigEndian.Uint64(in[6:])
		binary.LittleEndian.PutUint64(put, base64Quad(a))
		binary.LittleEndian.PutUint64(put[8:], base64Quad(b))
		in, put = in[12:], put[16:]
	}
	for len(in) >= 8 && len(put) >= 8 {
		binary.LittleEndian.PutUint64(put, base64Quad(binary.BigEndian.Uint64(in)))
		in, put = in[6:], put[8:]
	}
	return len(src) - len(in), len(out) - len(put)
}

// base64Quad encodes the top 48 bits of x as 8 characters, first in the
// low byte.
func base64Quad(x uint64) uint64 {
	return uint64(base64Pairs[x>>52]) |
		uint64(base64Pairs[(x>>40)&0xfff])<<16 |
		uint64(base64Pairs[(x>>28)&0xfff])<<32 |
		uint64(base64Pairs[(x>>16)&0xfff])<<48
}

// AppendBase64Decode appends the bytes that the standard padded base64 src
// encodes to dst, exactly as base64.StdEncoding.AppendDecode does: the same
// bytes, the same partial output and the same error (a CorruptInputError at
// the same offset) for malformed input, line ends ignored.
func AppendBase64Decode(dst, src []byte) ([]byte, error) {
	// The output size without padding, as AppendDecode computes it.
	n := len(src)
	for n > 0 && src[n-1] == '=' {
		n--
	}
	n = n/4*3 + n%4*6/8
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	// 16 characters in, 12 bytes out; the second store writes 8 bytes at
	// put[6:], hence 14 bytes of room at least. The last characters, which
	// may hold padding, are always left to the standard decoder: it must see
	// the end of the input.
	si, o := base64DecodeBlocks(out, src)
	in, put := src[si:], out[o:]
	// What was decoded above is whole quanta of alphabet characters only,
	// so the standard decoder, started here, treats the rest exactly as it
	// would have inside the whole input; only its error offsets need the
	// characters already consumed added.
	m, err := base64.StdEncoding.Decode(put, in)
	if ce, ok := err.(base64.CorruptInputError); ok {
		err = ce + base64.CorruptInputError(si)
	}
	return dst[:len(dst)+o+m], err
}

// base64DecodeBlocks decodes 16 characters to 12 bytes at a time from src
// into out while more than 16 characters are left, out has room for 14
// (the second 8-byte store of a step writes at 6) and the characters are
// alphabet ones. It returns the characters and bytes it did. It is its own
// function so that the loop keeps its few variables in registers.
func base64DecodeBlocks(out, src []byte) (int, int) {
	t := base64Pairs12()
	in, put := src, out
	for len(in) > 16 && len(put) >= 14 {
		x := binary.LittleEndian.Uint64(in)
		y := binary.LittleEndian.Uint64(in[8:])
		a0, a1, a2, a3 := t[uint16(x)], t[uint16(x>>16)], t[uint16(x>>32)], t[uint16(x>>48)]
		b0, b1, b2, b3 := t[uint16(y)], t[uint16(y>>16)], t[uint16(y>>32)], t[uint16(y>>48)]
		if a0&a1&a2&a3&b0&b1&b2&b3&base64Valid == 0 {
			break // a line end, padding or a bad character
		}
		binary.BigEndian.PutUint64(put, base64Six(a0, a1, a2, a3))
		binary.BigEndian.PutUint64(put[6:], base64Six(b0, b1, b2, b3))
		in, put = in[16:], put[12:]
	}
	return len(src) - len(in), len(out) - len(put)
}

// base64Six places four valid entries of base64Pairs12 in the top 48 bits
// of a word, first group highest. The groups are combined by XOR, so that
// the base64Valid bits of the last three, which land inside the group
// before, cancel out exactly with a constant (that of the first is shifted
// out) instead of being masked off one by one.
func base64Six(p0, p1, p2, p3 uint16) uint64 {
	const flags = base64Valid<<40 | base64Valid<<28 | base64Valid<<16
	return uint64(p0)<<52 ^ uint64(p1)<<40 ^ uint64(p2)<<28 ^ uint64(p3)<<16 ^ flags
}

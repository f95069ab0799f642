package protocol_test

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestAppendBase64Vectors checks the RFC 4648 §10 vectors and the fast
// decoder's way out (line ends, padding, bad characters) at known places.
func TestAppendBase64Vectors(t *testing.T) {
	for _, tc := range []struct{ raw, enc string }{
		{"", ""},
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
		{"foobarfoobarfoobar", "Zm9vYmFyZm9vYmFyZm9vYmFy"},
		{"\x00\x00\x00\xff\xff\xff\xfb\xef\xbe\x00\x10\x83\x10\x51\x87", "AAAA////++++ABCDEFGH"},
	} {
		if got := string(protocol.AppendBase64([]byte("x"), []byte(tc.raw))); got != "x"+tc.enc {
			t.Errorf("AppendBase64(%q) = %q, want %q", tc.raw, got, "x"+tc.enc)
		}
		got, err := protocol.AppendBase64Decode([]byte("x"), []byte(tc.enc))
		if err != nil || string(got) != "x"+tc.raw {
			t.Errorf("AppendBase64Decode(%q) = %q, %v; want %q", tc.enc, got, err, "x"+tc.raw)
		}
	}
	long := bytes.Repeat([]byte("QUJD"), 12) // "ABC" × 12, past one fast step
	for _, tc := range []struct {
		name string
		enc  string
		want string
		err  error
	}{
		{"LF inside a fast step", string(long[:5]) + "\n" + string(long[5:]), "ABC", nil},
		{"CRLF at the end", string(long) + "\r\n", "ABC", nil},
		{"bad character in the second step", string(long[:20]) + "*" + string(long[21:]), "", base64.CorruptInputError(20)},
		{"padding in the middle", string(long[:24]) + "QQ==" + string(long[24:]), "", base64.CorruptInputError(28)},
		{"missing padding", string(long) + "QQ", "", base64.CorruptInputError(48)},
	} {
		got, err := protocol.AppendBase64Decode(nil, []byte(tc.enc))
		want, wantErr := base64.StdEncoding.AppendDecode(nil, []byte(tc.enc))
		if err != tc.err || wantErr != tc.err {
			t.Errorf("%s: error %v, stdlib %v, want %v", tc.name, err, wantErr, tc.err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: decoded %q, stdlib %q", tc.name, got, want)
		}
		if tc.err == nil && string(got) != strings.Repeat(tc.want, 12) {
			t.Errorf("%s: decoded %q, want %q × 12", tc.name, got, tc.want)
		}
	}
}

// TestAppendBase64EveryPair encodes input that holds every 12-bit value at
// every position of a fast step, and every length up to three fast steps of
// both loops, against the standard library.
func TestAppendBase64EveryPair(t *testing.T) {
	// 4096 values × 12 bits, packed: each 3-byte run holds two values, and
	// shifting the start by 0..11 bytes puts them in every slot of a step.
	var raw []byte
	for v := 0; v < 1<<12; v += 2 {
		w := v<<12 | (v+1)&0xfff
		raw = append(raw, byte(w>>16), byte(w>>8), byte(w))
	}
	for shift := range 12 {
		checkBase64(t, raw[shift:])
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 64 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkBase64(t, b)
	}
}

// checkBase64 compares both directions with encoding/base64 on raw.
func checkBase64(t *testing.T, raw []byte) {
	t.Helper()
	enc := protocol.AppendBase64([]byte("pre"), raw)
	if want := base64.StdEncoding.AppendEncode([]byte("pre"), raw); !bytes.Equal(enc, want) {
		t.Fatalf("AppendBase64 of %d bytes:\n got %q\nwant %q", len(raw), enc, want)
	}
	dec, err := protocol.AppendBase64Decode([]byte("pre"), enc[3:])
	if err != nil || !bytes.Equal(dec[3:], raw) || string(dec[:3]) != "pre" {
		t.Fatalf("AppendBase64Decode of %d bytes: %v; round trip differs", len(raw), err)
	}
}

// FuzzAppendBase64 checks that AppendBase64 is base64.StdEncoding's
// AppendEncode, and that decoding gives the input back.
func FuzzAppendBase64(f *testing.F) {
	f.Add([]byte(""), []byte("abc"))
	f.Add([]byte("x"), bytes.Repeat([]byte{0xff, 0, 0x10}, 40))
	f.Add([]byte(nil), []byte("0123456789abcdefghij"))
	f.Fuzz(func(t *testing.T, prefix, raw []byte) {
		got := protocol.AppendBase64(bytes.Clone(prefix), raw)
		want := base64.StdEncoding.AppendEncode(bytes.Clone(prefix), raw)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendBase64(%q)\n got %q\nwant %q", raw, got, want)
		}
		dec, err := protocol.AppendBase64Decode(nil, got[len(prefix):])
		if err != nil || !bytes.Equal(dec, raw) {
			t.Fatalf("round trip of %q: %q, %v", raw, dec, err)
		}
	})
}

// FuzzAppendBase64Decode checks that AppendBase64Decode is
// base64.StdEncoding's AppendDecode on any input: the same bytes (partial
// ones too) and the same error.
func FuzzAppendBase64Decode(f *testing.F) {
	f.Add([]byte("x"), []byte("Zm9vYmFyZm9vYmFyZm9vYmFy"))
	f.Add([]byte(nil), []byte("Zm9vYmFyZm9vYmFy\r\nZm9vYmFyZm9vYmFyZm9vYmFy"))
	f.Add([]byte(nil), []byte("Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmF=Zm9vYmFyZm9vYmFy"))
	f.Add([]byte(nil), []byte("Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZg="))
	f.Add([]byte(nil), []byte("Zm9vYmFyZm9vYmFyZm9vYmFy\x00m9vYmFyZm9vYmFyZm9vYmFy"))
	f.Fuzz(func(t *testing.T, prefix, enc []byte) {
		got, err := protocol.AppendBase64Decode(bytes.Clone(prefix), enc)
		want, wantErr := base64.StdEncoding.AppendDecode(bytes.Clone(prefix), enc)
		if !bytes.Equal(got, want) || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("AppendBase64Decode(%q)\n got %q, %v\nwant %q, %v", enc, got, err, want, wantErr)
		}
	})
}

// BenchmarkBase64 compares the bulk chunk's encoding and decoding with the
// standard library's on one 48 KiB chunk; MB/s counts raw bytes.
func BenchmarkBase64(b *testing.B) {
	raw := make([]byte, protocol.BulkChunkSize)
	rand.NewChaCha8([32]byte{}).Read(raw)
	enc := base64.StdEncoding.AppendEncode(nil, raw)
	dst := make([]byte, 0, len(enc))
	for _, bc := range []struct {
		name string
		fn   func()
	}{
		{"Encode/stdlib", func() { dst = base64.StdEncoding.AppendEncode(dst[:0], raw) }},
		{"Encode/fast", func() { dst = protocol.AppendBase64(dst[:0], raw) }},
		{"Decode/stdlib", func() { dst, _ = base64.StdEncoding.AppendDecode(dst[:0], enc) }},
		{"Decode/fast", func() { dst, _ = protocol.AppendBase64Decode(dst[:0], enc) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				bc.fn()
			}
		})
	}
}

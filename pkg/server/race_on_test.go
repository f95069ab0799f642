//go:build race

package server_test

// largeBulk is the size of TestBulkLarge's transfer. Under the race detector
// every byte the server generates, encodes and sends, and every byte the
// test decodes and hashes, goes through instrumented code: 50 MiB takes
// about a minute on a 2-core machine, so -race runs send 20 MiB.
const largeBulk = 20 << 20

//go:build !race

package server_test

// largeBulk is the size of TestBulkLarge's transfer (see race_on_test.go).
const largeBulk = 50 << 20

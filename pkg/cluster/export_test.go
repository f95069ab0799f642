package cluster

// Key is key, for tests that read the broker's session records.
var Key = key

// SlowRecordWrites makes every record write wait in before(id) first, until
// the returned function undoes it. Not for parallel tests.
func SlowRecordWrites(before func(id string)) (undo func()) {
	testHookRecordWrite.Store(&before)
	return func() { testHookRecordWrite.Store(nil) }
}

package client

import "testing"

func dumpBulk(t *testing.T, h *runHandle) {
	for _, ev := range h.log {
		if ev.Kind == BulkProgress || ev.Kind == BulkDone || ev.Kind == State || ev.Kind == Gap || ev.Kind == Bye || ev.Kind == Other {
			s := describe(ev)
			if ev.Transfer != nil {
				r, tot := ev.Transfer.Progress()
				s += " progress " + itoa(r) + "/" + itoa(tot)
			}
			if ev.Err != nil {
				s += " err " + ev.Err.Error()
			}
			t.Log(s)
		}
	}
}

func itoa(n int64) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

package loadgen

import "testing"

func TestIDTracker(t *testing.T) {
	type op struct {
		kind   string // "pos", "ev", "gap", "noid"
		id     uint64
		missed uint64
	}
	pos := func(id uint64) op { return op{kind: "pos", id: id} }
	ev := func(ids ...uint64) []op {
		var out []op
		for _, id := range ids {
			out = append(out, op{kind: "ev", id: id})
		}
		return out
	}
	seq := func(parts ...any) []op {
		var out []op
		for _, p := range parts {
			switch p := p.(type) {
			case op:
				out = append(out, p)
			case []op:
				out = append(out, p...)
			}
		}
		return out
	}
	tests := []struct {
		name string
		ops  []op
		want IDStats
	}{
		{"clean from a new session", seq(pos(0), ev(1, 2, 3, 4)), IDStats{}},
		{"clean after a resume position", seq(pos(41), ev(42, 43)), IDStats{}},
		{"first event after position missing", seq(pos(0), ev(2, 3)), IDStats{Gaps: 1, Missing: 1}},
		{"one hole of three", seq(pos(0), ev(1, 5, 6)), IDStats{Gaps: 1, Missing: 3}},
		{"two holes", seq(pos(0), ev(1, 3, 4, 7)), IDStats{Gaps: 2, Missing: 3}},
		{"duplicate", seq(pos(0), ev(1, 2, 2, 3)), IDStats{Duplicates: 1}},
		{"out of order", seq(pos(0), ev(1, 3, 2, 4)), IDStats{Gaps: 1, Missing: 1, OutOfOrder: 1}},
		{"repeat of an old id", seq(pos(0), ev(1, 2, 3, 1, 4)), IDStats{OutOfOrder: 1}},
		{"announced gap is not a hole", seq(pos(0), ev(1), op{kind: "gap", id: 9, missed: 8}, ev(10, 11)),
			IDStats{ServerGaps: 1, ServerMissed: 8}},
		{"gap then hole", seq(pos(0), op{kind: "gap", id: 5, missed: 5}, ev(7)),
			IDStats{ServerGaps: 1, ServerMissed: 5, Gaps: 1, Missing: 1}},
		{"no position first", ev(5, 6, 8), IDStats{Gaps: 1, Missing: 1}},
		{"missing ids counted", seq(pos(0), op{kind: "noid"}, ev(1)), IDStats{NoID: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr idTracker
			for _, o := range tt.ops {
				switch o.kind {
				case "pos":
					tr.position(o.id)
				case "ev":
					tr.event(o.id)
				case "gap":
					tr.gap(o.id, o.missed)
				case "noid":
					tr.noID()
				}
			}
			if tr.stats != tt.want {
				t.Errorf("stats = %+v, want %+v", tr.stats, tt.want)
			}
			clean := tt.want.Gaps == 0 && tt.want.Duplicates == 0 && tt.want.OutOfOrder == 0 && tt.want.ServerGaps == 0
			if tr.stats.Clean() != clean {
				t.Errorf("Clean() = %v, want %v", tr.stats.Clean(), clean)
			}
		})
	}
}

func TestIDStatsAdd(t *testing.T) {
	s := IDStats{Gaps: 1, Missing: 2, Duplicates: 3, OutOfOrder: 4, ServerGaps: 5, ServerMissed: 6, NoID: 7}
	s.add(s)
	want := IDStats{Gaps: 2, Missing: 4, Duplicates: 6, OutOfOrder: 8, ServerGaps: 10, ServerMissed: 12, NoID: 14}
	if s != want {
		t.Errorf("add = %+v, want %+v", s, want)
	}
}

package loadgen

import (
	"slices"
	"testing"
)

func TestParseTargets(t *testing.T) {
	tests := []struct {
		raw     string
		want    []string
		wantErr bool
	}{
		{"http://127.0.0.1:8080", []string{"http://127.0.0.1:8080"}, false},
		{"http://127.0.0.1:8080/", []string{"http://127.0.0.1:8080"}, false},
		{"http://127.0.0.1:1, http://127.0.0.2:2,http://localhost:3,", []string{"http://127.0.0.1:1", "http://127.0.0.2:2", "http://localhost:3"}, false},
		{"http://127.0.0.1:1,http://10.0.0.1:2", nil, true}, // one foreign node refuses the run
		{"http://127.0.0.1:1,http://127.0.0.1:1", nil, true},
		{" , ", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := parseTargets(tt.raw)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseTargets(%q) error %v, want error %v", tt.raw, err, tt.wantErr)
			continue
		}
		if !slices.Equal(bases(got), tt.want) {
			t.Errorf("parseTargets(%q) = %v, want %v", tt.raw, bases(got), tt.want)
		}
	}
}

// TestPostNode: streams go round robin; POSTs go to the stream's node, or
// with anywhere to each of the other nodes in turn and never its own.
func TestPostNode(t *testing.T) {
	for nodes := 1; nodes <= 4; nodes++ {
		count := make([][]int, nodes)
		for i := range count {
			count[i] = make([]int, nodes)
		}
		for i := range 12 * nodes {
			s := streamNode(i, nodes)
			if s != i%nodes {
				t.Fatalf("streamNode(%d, %d) = %d", i, nodes, s)
			}
			if p := postNode(i, nodes, false); p != s {
				t.Errorf("postNode(%d, %d, false) = %d, want the stream's %d", i, nodes, p, s)
			}
			count[s][postNode(i, nodes, true)]++
		}
		for s := range nodes {
			for p := range nodes {
				want := 0
				switch {
				case nodes == 1:
					want = 12 // nowhere else to go
				case p != s:
					want = 12 / (nodes - 1)
				}
				if count[s][p] != want {
					t.Errorf("%d nodes: streams on %d posted %d times to %d, want %d", nodes, s, count[s][p], p, want)
				}
			}
		}
	}
}

func TestAllIPv4(t *testing.T) {
	v4, _ := parseTargets("http://127.0.0.1:1,http://127.0.0.2:2")
	mixed, _ := parseTargets("http://127.0.0.1:1,http://localhost:2")
	v6, _ := parseTargets("http://[::1]:1")
	if !allIPv4(v4) || allIPv4(mixed) || allIPv4(v6) {
		t.Errorf("allIPv4: %v %v %v, want true false false", allIPv4(v4), allIPv4(mixed), allIPv4(v6))
	}
}

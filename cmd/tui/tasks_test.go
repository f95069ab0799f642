package main

import (
	"sync/atomic"
	"testing"
)

func TestTasks(t *testing.T) {
	var ts tasks
	var ran atomic.Int32
	release := make(chan struct{})
	if !ts.Go(func() { <-release; ran.Add(1) }, func() { <-release; ran.Add(1) }) {
		t.Fatal("Go refused before Close")
	}
	close(release)
	ts.Close() // waits for both
	if ran.Load() != 2 {
		t.Fatalf("%d ran before Close returned, want 2", ran.Load())
	}
	if ts.Go(func() { ran.Add(1) }) {
		t.Fatal("Go started a goroutine after Close")
	}
	if ran.Load() != 2 {
		t.Fatal("a refused function ran")
	}
}

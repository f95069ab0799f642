package client_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A program opens a session, runs its stream in a goroutine and steers it
// with POSTs while it handles the events.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.Open(ctx, protocol.ChannelOne)
	if err != nil {
		log.Fatal(err)
	}
	events := make(chan client.Event, 64)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, events) }()

	n := int64(1 << 20)
	tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case client.State:
				fmt.Println("stream", ev.State, ev.Err)
			case client.Tick:
				fmt.Print(ev.Text)
			case client.Chat:
				fmt.Printf("%q says %q\n", ev.Chat.Name, ev.Chat.Text) // data, never markup
			case client.BulkDone:
				if ev.Transfer == tr {
					fmt.Println("transfer:", tr.Err())
					cancel()
				}
			}
		case err := <-done:
			fmt.Println("run ended:", err)
			return
		}
	}
}

package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// A backend publishes its own events to a published channel; every session
// tuned to it receives them, line ends and all.
func ExampleClient_Publish() {
	// A server with a published channel "log" and a publish token, as
	// `xhrsse -channel log` with XHRSSE_PUBLISH_TOKEN=s3cret runs it.
	hub, err := broadcast.New(broadcast.WithChannels(broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true}))
	if err != nil {
		log.Fatal(err)
	}
	api, err := server.New(hub, server.Config{PublishTokens: []string{"s3cret"}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer hub.Close(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseIdleConnections()

	// A reader tuned to the channel.
	reader, err := c.Open(ctx, "log")
	if err != nil {
		log.Fatal(err)
	}
	events := make(chan client.Event, 16)
	done := make(chan error, 1)
	go func() { done <- reader.Run(ctx, events) }()

	// The publisher: one call an event.
	if err := c.Publish(ctx, "s3cret", "log", "deploy started"); err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, "s3cret", "log", "step 1 of 3\nstep 2 of 3"); err != nil {
		log.Fatal(err)
	}

	for got := 0; got < 2; {
		ev := <-events
		if ev.Kind == client.Tick && ev.Channel == "log" {
			fmt.Printf("%s: %q\n", ev.Channel, ev.Text)
			got++
		}
	}
	cancel()
	<-done
	// Output:
	// log: "deploy started"
	// log: "step 1 of 3\nstep 2 of 3"
}

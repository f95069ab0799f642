package main

import "github.com/xhrsse/xhrsse/pkg/protocol"

// isPublished stands in for protocol.Channel.Published until the contract lands.
func isPublished(ch protocol.Channel) bool { return ch.Width == 0 && ch.Rate == 0 }

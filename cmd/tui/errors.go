package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/xhrsse/xhrsse/pkg/client"
)

// friendly turns an error into one short line a user can act on: the server's
// own message for an API error, the cause of a network failure ("connection
// refused", "unknown host") rather than Go's wrapping of it.
func friendly(err error) string {
	if err == nil {
		return ""
	}
	var ae *client.APIError
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		s := strconv.Itoa(ae.Status) + " " + ae.Message
		if ae.RetryAfter > 0 {
			s += " (retry in " + ae.RetryAfter.String() + ")"
		}
		return s
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &dnsErr):
		return "unknown host " + dnsErr.Name
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return errText(ue.Err)
	}
	return errText(err)
}

// friendlyErr is friendly as an error (nil stays nil).
func friendlyErr(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(friendly(err))
}

// errText is an error as a user should read it: one line, no Go wrapping
// noise beyond what explains the cause.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

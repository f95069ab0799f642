// Package web holds the browser page that the server sends at GET /: plain
// HTML, CSS and a few small JavaScript modules, embedded in the binary so the
// server needs no files on disk, no build step and no CDN.
//
// pkg/server serves Static's files by name ("/" is index.html), with the
// page's security headers, and answers a JSON 404 for any other path.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static returns the page's files rooted at the static directory, so that
// index.html is at the root of the returned file system. It is read-only and
// safe for concurrent use.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path name; "static" is valid.
		panic(err)
	}
	return sub
}

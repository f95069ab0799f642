// Package web holds the browser page that the server sends at GET /,
// embedded in the binary so the server needs no files on disk, no build step
// and no CDN. The files, in static/:
//
//   - index.html and style.css: the page and its look;
//   - app.js: the entry module, which makes the parts below and starts them
//     (its top comment says which module does what);
//   - connection.js and status.js: the session, its EventSource, and the
//     header that shows how the connection goes;
//   - channels.js, card.js and published.js: the channel cards and tuning;
//   - chat.js: the chat log and form;
//   - bulk.js, held.js and sha256.js: bulk transfers and their check;
//   - tabs.js and share.js: the tabs of an origin sharing one stream;
//   - api.js and dom.js: requests to the server, and small DOM helpers.
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

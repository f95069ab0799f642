package web_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/web"
)

// TestStaticFiles checks that the embedded file system has the page at its
// root, as http.FileServerFS needs it to answer "/" with index.html.
func TestStaticFiles(t *testing.T) {
	static := web.Static()
	for _, name := range []string{"index.html", "app.js", "sha256.js", "share.js", "published.js", "style.css"} {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`src="app.js"`, `href="style.css"`, `name="viewport"`, `lang="en"`} {
		if !strings.Contains(string(index), want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
}

// TestNoMarkupSinks keeps untrusted text out of the HTML parser: the page
// must build its DOM with textContent and createElement only, and load
// nothing from another origin.
func TestNoMarkupSinks(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment|DOMParser|srcdoc`)
	remote := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	err := fs.WalkDir(web.Static(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Static(), name)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(name, ".js") && sinks.MatchString(line) {
				t.Errorf("%s:%d uses a markup sink: %s", name, i+1, strings.TrimSpace(line))
			}
			if remote.MatchString(line) {
				t.Errorf("%s:%d loads from another origin: %s", name, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

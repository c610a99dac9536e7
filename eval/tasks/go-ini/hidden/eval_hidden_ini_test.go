// Acceptance tests of go-ini.
package ini_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"ini"
)

const evalHiddenSample = `; global settings
name = demo
  debug=true

[server]
host = example.com
port = 8080
# a comment
motd = "  hello there  "
url = http://x/?a=b

[client]
retries = 3
[server]
port = 9090
`

func evalHiddenParse(t *testing.T, text string) *ini.File {
	t.Helper()
	f, err := ini.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func evalHiddenGet(t *testing.T, f *ini.File, section, key, want string) {
	t.Helper()
	got, ok := f.Get(section, key)
	if !ok || got != want {
		t.Errorf("Get(%q, %q) = %q, %v; want %q", section, key, got, ok, want)
	}
}

func TestEvalHiddenParse(t *testing.T) {
	f := evalHiddenParse(t, evalHiddenSample)
	evalHiddenGet(t, f, "", "name", "demo")
	evalHiddenGet(t, f, "", "debug", "true")
	evalHiddenGet(t, f, "server", "host", "example.com")
	evalHiddenGet(t, f, "server", "port", "9090")
	evalHiddenGet(t, f, "server", "motd", "  hello there  ")
	evalHiddenGet(t, f, "server", "url", "http://x/?a=b")
	evalHiddenGet(t, f, "client", "retries", "3")
	if _, ok := f.Get("client", "host"); ok {
		t.Error("Get(client, host) found a key of another section")
	}
	if _, ok := f.Get("Server", "host"); ok {
		t.Error("section names are case-sensitive")
	}
	if _, ok := f.Get("nosuch", "x"); ok {
		t.Error("Get of a missing section found something")
	}
}

func TestEvalHiddenOrder(t *testing.T) {
	f := evalHiddenParse(t, evalHiddenSample)
	if got, want := f.Sections(), []string{"", "server", "client"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections() = %q, want %q", got, want)
	}
	if got, want := f.Keys("server"), []string{"host", "port", "motd", "url"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys(server) = %q, want %q", got, want)
	}
	g := evalHiddenParse(t, "[a]\nx=1\n")
	if got, want := g.Sections(), []string{"a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections() without global keys = %q, want %q", got, want)
	}
}

func TestEvalHiddenErrors(t *testing.T) {
	cases := map[string]string{
		"a = 1\nthis line has no equals\n":  "line 2",
		"[ok]\nx=1\n\n[broken\n":            "line 4",
		"= value\n":                         "line 1",
		"; c\n# c\n\n[s]\n k = v\n   =x\n": "line 6",
	}
	for text, want := range cases {
		_, err := ini.Parse(strings.NewReader(text))
		if err == nil {
			t.Errorf("Parse(%q): no error", text)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): error %q does not contain %q", text, err, want)
		}
	}
}

func TestEvalHiddenSet(t *testing.T) {
	f := evalHiddenParse(t, "")
	f.Set("db", "user", "admin")
	f.Set("db", "pass", "secret")
	f.Set("", "top", "level")
	f.Set("db", "user", "root")
	evalHiddenGet(t, f, "db", "user", "root")
	evalHiddenGet(t, f, "", "top", "level")
	if got, want := f.Keys("db"), []string{"user", "pass"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys(db) = %q, want %q", got, want)
	}
}

func evalHiddenSame(t *testing.T, a, b *ini.File) {
	t.Helper()
	if !reflect.DeepEqual(a.Sections(), b.Sections()) {
		t.Fatalf("sections %q became %q", a.Sections(), b.Sections())
	}
	for _, s := range a.Sections() {
		if !reflect.DeepEqual(a.Keys(s), b.Keys(s)) {
			t.Fatalf("keys of %q: %q became %q", s, a.Keys(s), b.Keys(s))
		}
		for _, k := range a.Keys(s) {
			va, _ := a.Get(s, k)
			vb, ok := b.Get(s, k)
			if !ok || va != vb {
				t.Fatalf("[%s] %s: %q became %q", s, k, va, vb)
			}
		}
	}
}

func TestEvalHiddenRoundTrip(t *testing.T) {
	f := evalHiddenParse(t, evalHiddenSample)
	f.Set("extra", "spaces", "  both ends ")
	f.Set("extra", "semi", "; not a comment")
	f.Set("extra", "hash", "#nor this")
	f.Set("extra", "empty", "")
	f.Set("extra", "eq", "a = b = c")
	var buf bytes.Buffer
	n, err := f.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	g, err := ini.Parse(&buf)
	if err != nil {
		t.Fatalf("Parse of WriteTo's output: %v\n%s", err, buf.String())
	}
	evalHiddenSame(t, f, g)
}

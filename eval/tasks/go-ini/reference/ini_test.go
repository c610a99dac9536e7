package ini

import (
	"strings"
	"testing"
)

func TestParseGet(t *testing.T) {
	f, err := Parse(strings.NewReader("a=1\n[s]\nb = \" x \"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Get("s", "b"); v != " x " {
		t.Fatalf("got %q", v)
	}
}

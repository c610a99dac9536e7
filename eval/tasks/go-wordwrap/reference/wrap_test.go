package wordwrap

import (
	"reflect"
	"testing"
)

func TestWrap(t *testing.T) {
	got := Wrap("a bb ccc", 4)
	want := []string{"a bb", "ccc"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

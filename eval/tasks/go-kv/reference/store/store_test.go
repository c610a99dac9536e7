package store

import (
	"path/filepath"
	"testing"
)

func TestSaveOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.kv")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	s.Set("a", "1\n2")
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s2.Get("a"); v != "1\n2" {
		t.Fatalf("got %q", v)
	}
}

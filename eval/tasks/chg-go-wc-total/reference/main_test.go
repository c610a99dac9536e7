package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runOK(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, strings.NewReader(stdin), &out, &errb); code != 0 {
		t.Fatalf("gowc %q: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

func TestOneFile(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.txt", "one two\nthree\nfour five six\n")
	got := runOK(t, "", a)
	want := "       3       6      28 " + a + "\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.txt", "héllo\nwörld\n")
	if got, want := runOK(t, "", "-l", a), "       2 "+a+"\n"; got != want {
		t.Errorf("-l: got %q, want %q", got, want)
	}
	if got, want := runOK(t, "", "-m", "-c", a), "      12      14 "+a+"\n"; got != want {
		t.Errorf("-m -c: got %q, want %q", got, want)
	}
	if got, want := runOK(t, "", "-w", a), "       2 "+a+"\n"; got != want {
		t.Errorf("-w: got %q, want %q", got, want)
	}
}

func TestStdin(t *testing.T) {
	if got, want := runOK(t, "a b\nc\n"), "       2       3       6\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.txt", "x\n")
	var out, errb bytes.Buffer
	code := run([]string{filepath.Join(dir, "nope"), a}, strings.NewReader(""), &out, &errb)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "nope") {
		t.Errorf("stderr %q does not name the file", errb.String())
	}
	if !strings.Contains(out.String(), a) {
		t.Errorf("the readable file was not counted: %q", out.String())
	}
}

func TestBadFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-x"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

func TestTotal(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.txt", "one two\n")
	b := write(t, dir, "b.txt", "three\nfour\n")
	got := runOK(t, "", "-l", "-w", a, b)
	want := "       1       2 " + a + "\n       2       2 " + b + "\n       3       4 total\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

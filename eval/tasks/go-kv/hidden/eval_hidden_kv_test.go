// Acceptance tests of go-kv, through the kv binary only.
package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	evalHiddenOnce sync.Once
	evalHiddenBin  string
	evalHiddenErr  error
	evalHiddenOut  []byte
)

// evalHiddenBuild builds the kv binary once, into a temporary folder.
func evalHiddenBuild(t *testing.T) string {
	t.Helper()
	evalHiddenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kv-bin-")
		if err != nil {
			evalHiddenErr = err
			return
		}
		evalHiddenBin = filepath.Join(dir, "kv")
		cmd := exec.Command("go", "build", "-o", evalHiddenBin, ".")
		evalHiddenOut, evalHiddenErr = cmd.CombinedOutput()
	})
	if evalHiddenErr != nil {
		t.Fatalf("go build: %v\n%s", evalHiddenErr, evalHiddenOut)
	}
	return evalHiddenBin
}

type evalHiddenKV struct {
	t   *testing.T
	bin string
	dir string
	db  string
}

func evalHiddenNew(t *testing.T) *evalHiddenKV {
	dir := t.TempDir()
	return &evalHiddenKV{t: t, bin: evalHiddenBuild(t), dir: dir, db: filepath.Join(dir, "data.kv")}
}

// run runs kv with -f db (unless noFile) in the test's folder.
func (k *evalHiddenKV) run(env []string, noFile bool, args ...string) (string, string, int) {
	k.t.Helper()
	if !noFile {
		args = append([]string{"-f", k.db}, args...)
	}
	cmd := exec.Command(k.bin, args...)
	cmd.Dir = k.dir
	base := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KV_FILE=") {
			base = append(base, e)
		}
	}
	cmd.Env = append(base, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			k.t.Fatalf("kv %q: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func (k *evalHiddenKV) ok(args ...string) string {
	k.t.Helper()
	out, errs, code := k.run(nil, false, args...)
	if code != 0 {
		k.t.Fatalf("kv %q: exit %d: %s", args, code, errs)
	}
	return out
}

func (k *evalHiddenKV) fails(args ...string) {
	k.t.Helper()
	before, _ := os.ReadFile(k.db)
	_, errs, code := k.run(nil, false, args...)
	if code == 0 {
		k.t.Errorf("kv %q succeeded, want an error", args)
	}
	if strings.TrimSpace(errs) == "" {
		k.t.Errorf("kv %q: no message on stderr", args)
	}
	after, _ := os.ReadFile(k.db)
	if !bytes.Equal(before, after) {
		k.t.Errorf("kv %q changed the data file", args)
	}
}

func TestEvalHiddenSetGet(t *testing.T) {
	k := evalHiddenNew(t)
	k.ok("set", "name", "Ada Lovelace")
	if got := k.ok("get", "name"); got != "Ada Lovelace\n" {
		t.Fatalf("get = %q", got)
	}
	k.ok("set", "name", "Grace")
	if got := k.ok("get", "name"); got != "Grace\n" {
		t.Fatalf("get after overwrite = %q", got)
	}
}

func TestEvalHiddenOddValues(t *testing.T) {
	k := evalHiddenNew(t)
	for _, v := range []string{"a = b", "two\nlines", "  spaced  ", "quote \" and \\ back", "", "ünïcødé ✓"} {
		k.ok("set", "key", v)
		if got := k.ok("get", "key"); got != v+"\n" {
			t.Errorf("value %q came back as %q", v, got)
		}
	}
}

func TestEvalHiddenListAndDel(t *testing.T) {
	k := evalHiddenNew(t)
	for _, key := range []string{"user:2", "user:1", "app", "user:10"} {
		k.ok("set", key, "x")
	}
	lines := func(s string) []string { return strings.Fields(s) }
	if got, want := lines(k.ok("list")), []string{"app", "user:1", "user:10", "user:2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list = %q, want %q", got, want)
	}
	if got, want := lines(k.ok("list", "user:1")), []string{"user:1", "user:10"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list user:1 = %q, want %q", got, want)
	}
	k.ok("del", "app")
	k.fails("get", "app")
	k.fails("del", "app")
	if got, want := lines(k.ok("list")), []string{"user:1", "user:10", "user:2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list after del = %q, want %q", got, want)
	}
}

func TestEvalHiddenIncr(t *testing.T) {
	k := evalHiddenNew(t)
	if got := strings.TrimSpace(k.ok("incr", "hits")); got != "1" {
		t.Errorf("incr of a missing key = %q", got)
	}
	if got := strings.TrimSpace(k.ok("incr", "hits", "41")); got != "42" {
		t.Errorf("incr 41 = %q", got)
	}
	if got := strings.TrimSpace(k.ok("incr", "hits", "-50")); got != "-8" {
		t.Errorf("incr -50 = %q", got)
	}
	if got := k.ok("get", "hits"); got != "-8\n" {
		t.Errorf("get after incr = %q", got)
	}
	k.ok("set", "word", "hello")
	k.fails("incr", "word")
	k.fails("incr", "hits", "x")
}

func TestEvalHiddenErrors(t *testing.T) {
	k := evalHiddenNew(t)
	k.ok("set", "a", "1")
	k.fails("get", "missing")
	k.fails("frobnicate")
	k.fails("set", "onlykey")
	k.fails("set", "bad key", "v")
	k.fails("set", "", "v")
	k.fails("get")
	_, errs, code := k.run(nil, false)
	if code == 0 || strings.TrimSpace(errs) == "" {
		t.Errorf("no command: exit %d, stderr %q", code, errs)
	}
}

func TestEvalHiddenDamagedFile(t *testing.T) {
	k := evalHiddenNew(t)
	if err := os.WriteFile(k.db, []byte("\x00\x01garbage{[\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k.fails("set", "a", "1")
	k.fails("get", "a")
	got, _ := os.ReadFile(k.db)
	if string(got) != "\x00\x01garbage{[\n" {
		t.Errorf("the damaged file was changed: %q", got)
	}
}

func TestEvalHiddenFileChoice(t *testing.T) {
	k := evalHiddenNew(t)
	envFile := filepath.Join(k.dir, "from-env.kv")
	if _, errs, code := k.run([]string{"KV_FILE=" + envFile}, true, "set", "e", "1"); code != 0 {
		t.Fatalf("set with KV_FILE: %s", errs)
	}
	if _, err := os.Stat(envFile); err != nil {
		t.Errorf("KV_FILE was not used: %v", err)
	}
	if _, errs, code := k.run(nil, true, "set", "d", "2"); code != 0 {
		t.Fatalf("set with the default file: %s", errs)
	}
	if _, err := os.Stat(filepath.Join(k.dir, "kv.db")); err != nil {
		t.Errorf("kv.db in the current folder was not used: %v", err)
	}
	out, _, code := k.run([]string{"KV_FILE=" + envFile}, true, "get", "e")
	if code != 0 || out != "1\n" {
		t.Errorf("get from KV_FILE = %q (exit %d)", out, code)
	}
	if _, _, code := k.run(nil, true, "get", "e"); code == 0 {
		t.Errorf("kv.db should not hold the key set in KV_FILE")
	}
}

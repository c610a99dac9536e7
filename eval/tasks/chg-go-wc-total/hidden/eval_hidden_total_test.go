// Acceptance tests of chg-go-wc-total, through the gowc binary.
package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	evalHiddenOnce sync.Once
	evalHiddenBin  string
	evalHiddenErr  error
	evalHiddenLog  []byte
)

func evalHiddenBuild(t *testing.T) string {
	t.Helper()
	evalHiddenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gowc-")
		if err != nil {
			evalHiddenErr = err
			return
		}
		evalHiddenBin = filepath.Join(dir, "gowc")
		evalHiddenLog, evalHiddenErr = exec.Command("go", "build", "-o", evalHiddenBin, ".").CombinedOutput()
	})
	if evalHiddenErr != nil {
		t.Fatalf("go build: %v\n%s", evalHiddenErr, evalHiddenLog)
	}
	return evalHiddenBin
}

func evalHiddenRun(t *testing.T, stdin string, args ...string) ([]string, string, int) {
	t.Helper()
	cmd := exec.Command(evalHiddenBuild(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, errb.String(), code
}

func evalHiddenFiles(t *testing.T) (string, string, string) {
	dir := t.TempDir()
	w := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return w("a.txt", "one two\nthree\n"), w("b.txt", "héllo wörld\nx\ny\n"), dir
}

// evalHiddenTotal checks that line is the counts WANT in columns of 8, then " total".
func evalHiddenTotal(t *testing.T, line string, want ...int) {
	t.Helper()
	if !strings.HasSuffix(line, " total") {
		t.Fatalf("last line %q does not end with ' total'", line)
	}
	nums := strings.TrimSuffix(line, " total")
	if len(nums) != 8*len(want) {
		t.Fatalf("total line %q: want %d columns of 8", line, len(want))
	}
	for i, w := range want {
		v, err := strconv.Atoi(strings.TrimSpace(nums[8*i : 8*i+8]))
		if err != nil || v != w {
			t.Fatalf("total line %q: column %d is not %d", line, i+1, w)
		}
	}
}

func TestEvalHiddenTwoFiles(t *testing.T) {
	a, b, _ := evalHiddenFiles(t)
	lines, errs, code := evalHiddenRun(t, "", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", lines)
	}
	if lines[0] != "       2       3      14 "+a || lines[1] != "       3       4      18 "+b {
		t.Errorf("the file lines changed: %q", lines[:2])
	}
	evalHiddenTotal(t, lines[2], 5, 7, 32)
}

func TestEvalHiddenOneFileNoTotal(t *testing.T) {
	a, _, _ := evalHiddenFiles(t)
	lines, _, _ := evalHiddenRun(t, "", a)
	if len(lines) != 1 || strings.Contains(lines[0], "total") {
		t.Fatalf("one file: got %q", lines)
	}
	lines, _, _ = evalHiddenRun(t, "a b\n")
	if len(lines) != 1 || lines[0] != "       1       2       4" {
		t.Fatalf("standard input: got %q", lines)
	}
}

func TestEvalHiddenOptions(t *testing.T) {
	a, b, _ := evalHiddenFiles(t)
	lines, _, _ := evalHiddenRun(t, "", "-l", a, b, a)
	if len(lines) != 4 {
		t.Fatalf("want 4 lines, got %q", lines)
	}
	evalHiddenTotal(t, lines[3], 7)
	lines, _, _ = evalHiddenRun(t, "", "-m", "-c", a, b)
	evalHiddenTotal(t, lines[len(lines)-1], 30, 32)
}

func TestEvalHiddenUnreadable(t *testing.T) {
	a, b, dir := evalHiddenFiles(t)
	missing := filepath.Join(dir, "missing.txt")
	lines, errs, code := evalHiddenRun(t, "", a, missing, b)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errs, "missing.txt") {
		t.Errorf("stderr %q does not name the missing file", errs)
	}
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", lines)
	}
	evalHiddenTotal(t, lines[2], 5, 7, 32)
	lines, _, code = evalHiddenRun(t, "", missing, a)
	if code != 1 || len(lines) != 2 {
		t.Fatalf("one readable file of two: exit %d, lines %q", code, lines)
	}
	evalHiddenTotal(t, lines[1], 2, 3, 14)
}

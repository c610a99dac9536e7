// Acceptance tests of go-wordwrap.
package wordwrap_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"wordwrap"
)

func TestEvalHiddenGreedy(t *testing.T) {
	got := wordwrap.Wrap("the quick brown fox jumps over the lazy dog", 10)
	want := []string{"the quick", "brown fox", "jumps over", "the lazy", "dog"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEvalHiddenExactFit(t *testing.T) {
	got := wordwrap.Wrap("aaa bbb ccc", 7)
	want := []string{"aaa bbb", "ccc"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEvalHiddenWhitespace(t *testing.T) {
	got := wordwrap.Wrap("  one\ttwo\n\nthree   four ", 9)
	want := []string{"one two", "three", "four"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, s := range []string{"", "   ", "\n\t"} {
		if got := wordwrap.Wrap(s, 10); len(got) != 0 {
			t.Errorf("Wrap(%q) = %q, want no lines", s, got)
		}
	}
}

func TestEvalHiddenLongWord(t *testing.T) {
	got := wordwrap.Wrap("a supercalifragilistic word", 6)
	want := []string{"a", "supercalifragilistic", "word"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEvalHiddenRunes(t *testing.T) {
	got := wordwrap.Wrap("ééé ééé ééé", 7)
	want := []string{"ééé ééé", "ééé"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEvalHiddenTinyWidth(t *testing.T) {
	for _, w := range []int{0, -5, 1} {
		got := wordwrap.Wrap("a b c", w)
		want := []string{"a", "b", "c"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("width %d: got %q, want %q", w, got, want)
		}
	}
}

func TestEvalHiddenProperties(t *testing.T) {
	text := strings.Repeat("lorem ipsum dolor sit amet consectetur adipiscing elit sed do ", 20)
	words := strings.Fields(text)
	for width := 1; width <= 40; width++ {
		lines := wordwrap.Wrap(text, width)
		var back []string
		for i, l := range lines {
			ws := strings.Fields(l)
			if strings.Join(ws, " ") != l {
				t.Fatalf("width %d: line %q is not words joined by single spaces", width, l)
			}
			if utf8.RuneCountInString(l) > width && len(ws) > 1 {
				t.Fatalf("width %d: line %q is too long", width, l)
			}
			if i+1 < len(lines) {
				next := strings.Fields(lines[i+1])[0]
				if utf8.RuneCountInString(l)+1+utf8.RuneCountInString(next) <= width {
					t.Fatalf("width %d: %q would have fitted on %q", width, next, l)
				}
			}
			back = append(back, ws...)
		}
		if !reflect.DeepEqual(back, words) {
			t.Fatalf("width %d: the words changed", width)
		}
	}
}

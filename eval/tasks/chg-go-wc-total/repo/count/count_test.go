package count

import (
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	cases := []struct {
		in   string
		want Counts
	}{
		{"", Counts{}},
		{"hello\n", Counts{1, 1, 6, 6}},
		{"one two  three\nfour\n", Counts{2, 4, 20, 20}},
		{"no newline", Counts{0, 2, 10, 10}},
		{"héllo wörld\n", Counts{1, 2, 12, 14}},
		{"\t \n\n", Counts{2, 0, 4, 4}},
		{"a\xffb c\n", Counts{1, 2, 6, 6}},
	}
	for _, c := range cases {
		got, err := Reader(strings.NewReader(c.in))
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestAdd(t *testing.T) {
	c := Counts{1, 2, 3, 4}
	c.Add(Counts{10, 20, 30, 40})
	if c != (Counts{11, 22, 33, 44}) {
		t.Fatalf("got %+v", c)
	}
}

// gowc counts lines, words, characters and bytes, like wc.
//
//	gowc [-l] [-w] [-m] [-c] [FILE...]
//
// Without options it prints lines, words and bytes. Without files it reads
// standard input. Each file gets one line: the counts, right-aligned in
// columns of 8, then the name; with two or more files a last line gives the
// totals.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gowc/count"
)

type options struct {
	lines, words, chars, bytes bool
}

// columns returns the values to print for c, in wc's order.
func (o options) columns(c count.Counts) []int64 {
	var out []int64
	if o.lines {
		out = append(out, c.Lines)
	}
	if o.words {
		out = append(out, c.Words)
	}
	if o.chars {
		out = append(out, c.Chars)
	}
	if o.bytes {
		out = append(out, c.Bytes)
	}
	return out
}

func format(o options, c count.Counts, name string) string {
	var b strings.Builder
	for _, v := range o.columns(c) {
		fmt.Fprintf(&b, "%8d", v)
	}
	if name != "" {
		b.WriteString(" " + name)
	}
	return b.String()
}

// run is the whole program: it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gowc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.lines, "l", false, "count lines")
	fs.BoolVar(&o.words, "w", false, "count words")
	fs.BoolVar(&o.chars, "m", false, "count characters")
	fs.BoolVar(&o.bytes, "c", false, "count bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !o.lines && !o.words && !o.chars && !o.bytes {
		o.lines, o.words, o.bytes = true, true, true
	}
	files := fs.Args()
	if len(files) == 0 {
		c, err := count.Reader(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "gowc: standard input: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, format(o, c, ""))
		return 0
	}
	status := 0
	var total count.Counts
	for _, name := range files {
		c, err := countFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "gowc: %v\n", err)
			status = 1
			continue
		}
		total.Add(c)
		fmt.Fprintln(stdout, format(o, c, name))
	}
	if len(files) > 1 {
		fmt.Fprintln(stdout, format(o, total, "total"))
	}
	return status
}

func countFile(name string) (count.Counts, error) {
	if name == "-" {
		return count.Reader(os.Stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return count.Counts{}, err
	}
	defer f.Close()
	return count.Reader(f)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Package count counts the lines, words, characters and bytes of a text.
package count

import (
	"bufio"
	"io"
	"unicode"
	"unicode/utf8"
)

// Counts of one input.
type Counts struct {
	Lines int64 // newline characters
	Words int64 // maximal runs of non-space characters
	Chars int64 // UTF-8 characters (an invalid byte counts as one)
	Bytes int64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Lines += o.Lines
	c.Words += o.Words
	c.Chars += o.Chars
	c.Bytes += o.Bytes
}

// Reader counts everything r yields until EOF.
func Reader(r io.Reader) (Counts, error) {
	var c Counts
	br := bufio.NewReaderSize(r, 64*1024)
	inWord := false
	for {
		ch, size, err := br.ReadRune()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.Bytes += int64(size)
		c.Chars++
		if ch == '\n' {
			c.Lines++
		}
		space := unicode.IsSpace(ch) && !(ch == utf8.RuneError && size == 1)
		if space {
			inWord = false
		} else if !inWord {
			inWord = true
			c.Words++
		}
	}
}

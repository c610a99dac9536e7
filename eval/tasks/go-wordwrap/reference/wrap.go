// Package wordwrap fills lines greedily with the words of a text.
package wordwrap

import (
	"strings"
	"unicode/utf8"
)

// Wrap splits text into words (strings.Fields) and puts as many on each line
// as fit in width runes, separated by single spaces. A word longer than width
// gets a line of its own. A width below 1 counts as 1.
func Wrap(text string, width int) []string {
	if width < 1 {
		width = 1
	}
	var lines []string
	var cur strings.Builder
	curLen := 0
	for _, w := range strings.Fields(text) {
		n := utf8.RuneCountInString(w)
		if curLen > 0 && curLen+1+n > width {
			lines = append(lines, cur.String())
			cur.Reset()
			curLen = 0
		}
		if curLen > 0 {
			cur.WriteByte(' ')
			curLen++
		}
		cur.WriteString(w)
		curLen += n
	}
	if curLen > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// Package ini reads and writes INI files: [section] headers, key = value
// lines, ; and # comments. Sections and keys keep the order they first appear.
package ini

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

type section struct {
	name   string
	keys   []string
	values map[string]string
}

// File is a parsed INI file.
type File struct {
	sections []*section
	byName   map[string]*section
}

// New returns an empty file.
func New() *File {
	return &File{byName: map[string]*section{}}
}

func (f *File) section(name string, create bool) *section {
	s := f.byName[name]
	if s == nil && create {
		s = &section{name: name, values: map[string]string{}}
		f.byName[name] = s
		f.sections = append(f.sections, s)
	}
	return s
}

// Parse reads an INI file; an error names the 1-based line that is wrong.
func Parse(r io.Reader) (*File, error) {
	f := New()
	cur := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == ';' || line[0] == '#':
			continue
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("ini: line %d: section header without ']': %q", n, line)
			}
			cur = strings.TrimSpace(line[1 : len(line)-1])
			f.section(cur, true)
		default:
			eq := strings.IndexByte(line, '=')
			if eq < 0 {
				return nil, fmt.Errorf("ini: line %d: expected key = value: %q", n, line)
			}
			key := strings.TrimSpace(line[:eq])
			if key == "" {
				return nil, fmt.Errorf("ini: line %d: empty key", n)
			}
			val := strings.TrimSpace(line[eq+1:])
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			f.Set(cur, key, val)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ini: %w", err)
	}
	return f, nil
}

// Get returns the value of key in section.
func (f *File) Get(sectionName, key string) (string, bool) {
	s := f.section(sectionName, false)
	if s == nil {
		return "", false
	}
	v, ok := s.values[key]
	return v, ok
}

// Set sets key in section, adding either when missing.
func (f *File) Set(sectionName, key, value string) {
	s := f.section(sectionName, true)
	if _, ok := s.values[key]; !ok {
		s.keys = append(s.keys, key)
	}
	s.values[key] = value
}

// Sections returns the section names in order; "" only when it has keys.
func (f *File) Sections() []string {
	var out []string
	for _, s := range f.sections {
		if s.name == "" && len(s.keys) == 0 {
			continue
		}
		out = append(out, s.name)
	}
	return out
}

// Keys returns the keys of a section in order.
func (f *File) Keys(sectionName string) []string {
	s := f.section(sectionName, false)
	if s == nil {
		return nil
	}
	return append([]string(nil), s.keys...)
}

func quote(v string) string {
	if v != strings.TrimSpace(v) || strings.HasPrefix(v, ";") || strings.HasPrefix(v, "#") ||
		(len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"') {
		return `"` + v + `"`
	}
	return v
}

// WriteTo writes the file in INI form; Parse of the output gives it back.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	// keys of "" come first, before any header
	ordered := make([]*section, 0, len(f.sections))
	if g := f.byName[""]; g != nil {
		ordered = append(ordered, g)
	}
	for _, s := range f.sections {
		if s.name != "" {
			ordered = append(ordered, s)
		}
	}
	for i, s := range ordered {
		if s.name != "" {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "[%s]\n", s.name)
		}
		for _, k := range s.keys {
			fmt.Fprintf(&b, "%s = %s\n", k, quote(s.values[k]))
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Package store keeps string values under string keys in one JSON file,
// replaced atomically on Save.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNotFound is returned for a key that is not in the store.
var ErrNotFound = errors.New("no such key")

// Store is the contents of one data file.
type Store struct {
	path string
	data map[string]string
}

// Open reads the data file at path; a missing file is an empty store.
func Open(path string) (*Store, error) {
	s := &Store{path: path, data: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("%s is not a kv data file: %w", path, err)
	}
	if s.data == nil {
		s.data = map[string]string{}
	}
	return s, nil
}

// ValidKey reports whether key may be stored: non-empty, no whitespace.
func ValidKey(key string) bool {
	return key != "" && !strings.ContainsAny(key, " \t\r\n\v\f")
}

// Get returns the value of key or ErrNotFound.
func (s *Store) Get(key string) (string, error) {
	v, ok := s.data[key]
	if !ok {
		return "", fmt.Errorf("%q: %w", key, ErrNotFound)
	}
	return v, nil
}

// Set stores value under key.
func (s *Store) Set(key, value string) { s.data[key] = value }

// Delete removes key or returns ErrNotFound.
func (s *Store) Delete(key string) error {
	if _, ok := s.data[key]; !ok {
		return fmt.Errorf("%q: %w", key, ErrNotFound)
	}
	delete(s.data, key)
	return nil
}

// Keys returns the keys that start with prefix, sorted.
func (s *Store) Keys(prefix string) []string {
	var out []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Save writes the store to a temporary file beside the data file and renames
// it over the data file.
func (s *Store) Save() error {
	b, err := json.MarshalIndent(s.data, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".kv-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	if werr == nil {
		werr = tmp.Sync()
	}
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), s.path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

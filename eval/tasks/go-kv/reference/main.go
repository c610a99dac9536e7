// kv [-f FILE] COMMAND [ARGS]: a key-value store on the command line.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"kv/store"
)

const usage = `usage: kv [-f FILE] COMMAND [ARGS]
  set KEY VALUE    store a value
  get KEY          print a value
  del KEY          remove a key
  list [PREFIX]    the keys, sorted
  incr KEY [N]     add N (default 1) to an integer value and print it
The data file is FILE, else $KV_FILE, else kv.db.`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("kv", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	file := fl.String("f", "", "the data file")
	if err := fl.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *file == "" {
		*file = os.Getenv("KV_FILE")
	}
	if *file == "" {
		*file = "kv.db"
	}
	rest := fl.Args()
	if len(rest) == 0 {
		return usageError{"no command"}
	}
	cmd, rest := rest[0], rest[1:]
	want := map[string][2]int{"set": {2, 2}, "get": {1, 1}, "del": {1, 1}, "list": {0, 1}, "incr": {1, 2}}
	n, ok := want[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if len(rest) < n[0] || len(rest) > n[1] {
		return usageError{fmt.Sprintf("%s: wrong number of arguments", cmd)}
	}
	if cmd != "list" && !store.ValidKey(rest[0]) {
		return fmt.Errorf("invalid key %q: keys are non-empty and have no whitespace", rest[0])
	}
	s, err := store.Open(*file)
	if err != nil {
		return err
	}
	switch cmd {
	case "set":
		s.Set(rest[0], rest[1])
		return s.Save()
	case "get":
		v, err := s.Get(rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
	case "del":
		if err := s.Delete(rest[0]); err != nil {
			return err
		}
		return s.Save()
	case "list":
		prefix := ""
		if len(rest) == 1 {
			prefix = rest[0]
		}
		for _, k := range s.Keys(prefix) {
			fmt.Fprintln(stdout, k)
		}
	case "incr":
		by := int64(1)
		if len(rest) == 2 {
			if by, err = strconv.ParseInt(rest[1], 10, 64); err != nil {
				return fmt.Errorf("incr: %q is not an integer", rest[1])
			}
		}
		cur := int64(0)
		v, err := s.Get(rest[0])
		if err == nil {
			if cur, err = strconv.ParseInt(v, 10, 64); err != nil {
				return fmt.Errorf("incr: the value of %q is not an integer", rest[0])
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		cur += by
		s.Set(rest[0], strconv.FormatInt(cur, 10))
		if err := s.Save(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, cur)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kv: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

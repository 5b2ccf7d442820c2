// Command shmmap inspects and cleans up POSIX shared memory segments.
//
//	shmmap ls [--json]        list segments: key, size, mode, owner, age, and
//	                          for keys made by package shmmap the creator pid
//	                          and whether it is alive
//	shmmap rm KEY...          remove segments' names (shm_unlink)
//	shmmap sweep [--json]     remove the segments of package shmmap whose
//	                          creator is dead, and print them
//
// Exit status: 0 on success, 1 if an operation failed (each failure is
// reported on stderr; rm goes on with the other keys), 2 for bad usage.
// Install with: go install github.com/shmmap-go/shmmap/cmd/shmmap@latest
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/shmmap-go/shmmap"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: shmmap ls [--json]
       shmmap rm KEY...
       shmmap sweep [--json]
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("shmmap "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "shmmap:", err)
		return 1
	}
	switch args[0] {
	case "ls":
		if fs.NArg() != 0 {
			fs.Usage()
			return 2
		}
		segs, err := shmmap.List()
		if err != nil {
			return fail(err)
		}
		sort.Slice(segs, func(i, j int) bool { return segs[i].Key < segs[j].Key })
		if *asJSON {
			return printJSON(stdout, stderr, rows(segs))
		}
		printTable(stdout, segs)
	case "rm":
		if fs.NArg() == 0 || *asJSON {
			fs.Usage()
			return 2
		}
		status := 0
		for _, key := range fs.Args() {
			if err := shmmap.Unlink(key); err != nil {
				fmt.Fprintln(stderr, "shmmap:", err)
				status = 1
			}
		}
		return status
	case "sweep":
		if fs.NArg() != 0 {
			fs.Usage()
			return 2
		}
		removed, err := shmmap.Sweep()
		if *asJSON {
			if removed == nil {
				removed = []string{}
			}
			if code := printJSON(stdout, stderr, removed); code != 0 {
				return code
			}
		} else {
			for _, k := range removed {
				fmt.Fprintln(stdout, "removed", k)
			}
		}
		if err != nil {
			return fail(err)
		}
	default:
		fmt.Fprintf(stderr, "shmmap: unknown command %q\n", args[0])
		fmt.Fprint(stderr, usage)
		return 2
	}
	return 0
}

// row is a segment as --json prints it.
type row struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	Mode         string    `json:"mode"`
	UID          int       `json:"uid"`
	Owner        string    `json:"owner"`
	Changed      time.Time `json:"changed"`
	Creator      int       `json:"creator_pid,omitempty"`
	CreatorAlive *bool     `json:"creator_alive,omitempty"`
}

func rows(segs []shmmap.Segment) []row {
	out := make([]row, 0, len(segs))
	for _, s := range segs {
		r := row{Key: s.Key, Size: s.Size, Mode: fmt.Sprintf("%#o", uint32(s.Mode)), UID: s.UID,
			Owner: owner(s.UID), Changed: s.Changed.UTC(), Creator: s.Creator}
		if s.Creator != 0 {
			alive := s.CreatorAlive
			r.CreatorAlive = &alive
		}
		out = append(out, r)
	}
	return out
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "shmmap:", err)
		return 1
	}
	return 0
}

func printTable(w io.Writer, segs []shmmap.Segment) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "KEY\tSIZE\tMODE\tOWNER\tAGE\tCREATOR\tALIVE\t")
	for _, s := range segs {
		creator, alive := "-", "-"
		if s.Creator != 0 {
			creator = strconv.Itoa(s.Creator)
			alive = map[bool]string{true: "yes", false: "no"}[s.CreatorAlive]
		}
		fmt.Fprintf(tw, "%s\t%d\t%#o\t%s\t%s\t%s\t%s\t\n", s.Key, s.Size, uint32(s.Mode), owner(s.UID),
			age(time.Since(s.Changed)), creator, alive)
	}
	tw.Flush()
}

// owner is the user name of uid, or the number.
func owner(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// age is d rounded to a readable unit.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return d.Round(time.Hour).String()
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

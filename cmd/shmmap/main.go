// Command shmmap inspects and cleans up POSIX shared memory segments.
//
// Usage:
//
//	shmmap ls [--json]      list the segments
//	shmmap rm [--] KEY...   remove segments' names (shm_unlink)
//	shmmap sweep [--json]   remove the leftovers of package shmmap
//	shmmap help             print the help (so do -h, --help and CMD -h)
//
// Ls prints a header and one line per segment, with the columns
//
//	KEY    the name, with its leading slash, escaped (see below)
//	SIZE   in bytes
//	MODE   permission bits, in octal
//	OWNER  the owner's user name, or uid
//	AGE    time since the status change (for a segment of package shmmap,
//	       since it was made)
//	ALIVE  for a segment that package shmmap's Create made: yes if its
//	       creator still holds it, no if the creator is gone, ? if this
//	       user may not ask; - for any other program's segment
//
// Rm removes the names given, which it takes as ls prints them (the leading
// slash may be left out), and goes on past one it cannot remove. Mappings
// stay valid until unmapped.
//
// Sweep removes this user's segments of package shmmap whose creator is gone
// (it crashed or was killed before Release) and prints "removed KEY" for
// each.
//
// # Escaping
//
// Anyone may put a file with any bytes in its name in /dev/shm, so ls, rm
// and sweep never print a name's bytes raw: every byte that is not part of a
// printable UTF-8 character (unicode.IsPrint) is written as in a Go string
// literal, and a backslash as \\:
//
//	\a \b \f \n \r \t \v   those control characters
//	\xNN                   other bytes below 0x80, and bytes of invalid UTF-8
//	\uNNNN \UNNNNNNNN      other characters that are not printable (U+202E)
//	\\                     a backslash
//
// Every other character, spaces and quotes included, stands for itself. Rm
// undoes the escaping: in a KEY a backslash always starts an escape, any of
// Go's string literal escapes but \' and \" (\NNN octal too), so a name
// with a backslash in it is given with \\ (in the shell: 'a\\b'). A
// malformed escape is bad usage, and rm then removes nothing.
//
// # JSON
//
// Ls --json prints an array of objects with the fields
//
//	"key"         the name as ls prints it, escaped: give it to rm as is
//	"key_base64"  the name's exact bytes, slash included, in base64 (RFC
//	              4648, standard alphabet, padded)
//	"size"        in bytes
//	"mode"        permission bits, as a string in octal: "0600"
//	"uid"         the owner's uid
//	"owner"       the owner's user name, or uid
//	"changed"     the status change time, RFC 3339 in UTC
//	"creator"     for a segment of package shmmap: "alive", "gone" or
//	              "unknown", as ALIVE's yes, no and ?; absent for any other
//	              program's segment
//
// Sweep --json prints the array of the keys it removed, escaped.
//
// # Exit status
//
// 0 on success; 1 if an operation failed (each failure is reported on
// stderr, and rm and sweep go on with the others); 2 for bad usage. Help
// goes to stdout with status 0.
//
// Install with: go install github.com/shmmap-go/shmmap/cmd/shmmap@latest
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shmmap-go/shmmap"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const synopsis = `usage: shmmap ls [--json]
       shmmap rm [--] KEY...
       shmmap sweep [--json]
       shmmap help
`

// help is what -h prints: the package comment, in short.
const help = synopsis + `
ls lists the segments that this user can see, one line each:
  KEY    the name, with its leading slash, escaped (see below)
  SIZE   in bytes
  MODE   permission bits, in octal
  OWNER  the owner's user name, or uid
  AGE    time since the status change (for a segment of package shmmap,
         since it was made)
  ALIVE  for a segment that package shmmap's Create made: yes if its
         creator still holds it, no if the creator is gone, ? if this
         user may not ask; - for any other program's segment

rm removes the names given (shm_unlink), as ls prints them; the leading
slash may be left out. It goes on past a name it cannot remove.

sweep removes this user's segments of package shmmap whose creator is gone
and prints "removed KEY" for each.

Escaping: ls, rm and sweep print every byte of a name that is not part of
a printable UTF-8 character as in a Go string literal, and a backslash as
\\: \a \b \f \n \r \t \v for those controls, \xNN for other bytes below
0x80 and for bytes of invalid UTF-8, \uNNNN or \UNNNNNNNN for other
characters that are not printable (such as U+202E). Every other character,
spaces and quotes included, stands for itself. rm undoes it: in a KEY a
backslash always starts an escape (any of Go's but \' and \"), so a name
with a backslash in it is given with \\ (in the shell: 'a\\b'). A
malformed escape is bad usage, and rm then removes nothing.

ls --json prints an array of objects:
  "key"         the name as ls prints it, escaped: give it to rm as is
  "key_base64"  the name's exact bytes, slash included, in base64
  "size"        in bytes
  "mode"        permission bits, as a string in octal: "0600"
  "uid"         the owner's uid
  "owner"       the owner's user name, or uid
  "changed"     the status change time, RFC 3339 in UTC
  "creator"     "alive", "gone" or "unknown" (ALIVE's yes, no and ?);
                absent for a segment that package shmmap did not make
sweep --json prints the array of the keys it removed, escaped.

Exit status: 0 on success; 1 if an operation failed (each failure is
reported on stderr, and rm and sweep go on with the others); 2 for bad
usage.
`

// sweep is shmmap.Sweep; tests replace it to see how its errors are shown.
var sweep = shmmap.Sweep

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, "")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, help)
		return 0
	case "ls", "rm", "sweep":
	default:
		return usageError(stderr, fmt.Sprintf("unknown command %q", cmd))
	}
	fs := flag.NewFlagSet("shmmap "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // run prints the usage itself
	asJSON := new(bool)
	if cmd != "rm" {
		fs.BoolVar(asJSON, "json", false, "print JSON instead of a table")
	}
	switch err := fs.Parse(args); {
	case err == flag.ErrHelp:
		fmt.Fprint(stdout, help)
		return 0
	case err != nil:
		return usageError(stderr, "") // fs has printed the error
	case cmd == "rm" && fs.NArg() == 0:
		return usageError(stderr, "rm needs a KEY")
	case cmd != "rm" && fs.NArg() != 0:
		return usageError(stderr, fmt.Sprintf("%s takes no arguments", cmd))
	}
	switch cmd {
	case "ls":
		return ls(stdout, stderr, *asJSON)
	case "rm":
		return rm(stderr, fs.Args())
	}
	return sweepCmd(stdout, stderr, *asJSON)
}

// usageError prints msg, if any, and the synopsis to w, and returns 2.
func usageError(w io.Writer, msg string) int {
	if msg != "" {
		fmt.Fprintln(w, "shmmap:", msg)
	}
	fmt.Fprint(w, synopsis)
	fmt.Fprintln(w, "Run 'shmmap -h' for details.")
	return 2
}

func ls(stdout, stderr io.Writer, asJSON bool) int {
	segs, err := shmmap.List()
	if err != nil {
		report(stderr, err)
		return 1
	}
	slices.SortFunc(segs, func(a, b shmmap.Segment) int { return strings.Compare(a.Key, b.Key) })
	if asJSON {
		return printJSON(stdout, stderr, rows(segs))
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "KEY\tSIZE\tMODE\tOWNER\tAGE\tALIVE\t")
	for _, s := range segs {
		fmt.Fprintf(tw, "%s\t%d\t%#o\t%s\t%s\t%s\t\n", escape(s.Key), s.Size, uint32(s.Mode),
			escape(owner(s.UID)), age(time.Since(s.Changed)), alive[s.Creator])
	}
	if err := tw.Flush(); err != nil {
		report(stderr, err)
		return 1
	}
	return 0
}

// rm unescapes every key before it removes any, so that a typo in one
// leaves them all in place.
func rm(stderr io.Writer, args []string) int {
	keys := make([]string, len(args))
	for i, arg := range args {
		key, err := unescape(arg)
		if err != nil {
			return usageError(stderr, fmt.Sprintf("rm %s: %v (give a backslash as \\\\)", printable(arg), err))
		}
		keys[i] = key
	}
	status := 0
	for _, key := range keys {
		if err := shmmap.Unlink(key); err != nil {
			report(stderr, err)
			status = 1
		}
	}
	return status
}

// sweepCmd prints what sweep removed, then every error it returned.
func sweepCmd(stdout, stderr io.Writer, asJSON bool) int {
	removed, err := sweep()
	keys := make([]string, len(removed))
	for i, k := range removed {
		keys[i] = escape(k)
	}
	status := 0
	if asJSON {
		status = printJSON(stdout, stderr, keys)
	} else {
		for _, k := range keys {
			fmt.Fprintln(stdout, "removed", k)
		}
	}
	if err != nil {
		report(stderr, err)
		status = 1
	}
	return status
}

// report prints err to w, one line for each of the errors it joins (as
// errors.Join does), with the key of an *fs.PathError escaped and anything
// else that is not printable escaped too.
func report(w io.Writer, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			report(w, e)
		}
		return
	}
	msg := err.Error()
	if pe, ok := err.(*fs.PathError); ok {
		msg = pe.Op + " " + escape(pe.Path) + ": " + pe.Err.Error()
	}
	fmt.Fprintln(w, "shmmap:", printable(msg))
}

// row is a segment as ls --json prints it; see the package comment.
type row struct {
	Key       string    `json:"key"`
	KeyBase64 []byte    `json:"key_base64"`
	Size      int64     `json:"size"`
	Mode      string    `json:"mode"`
	UID       int       `json:"uid"`
	Owner     string    `json:"owner"`
	Changed   time.Time `json:"changed"`
	Creator   string    `json:"creator,omitempty"`
}

// alive is the ALIVE column for each state: glyphs of this command's own,
// short enough to keep the table narrow.
var alive = map[shmmap.Creator]string{
	shmmap.CreatorNone:    "-",
	shmmap.CreatorUnknown: "?",
	shmmap.CreatorAlive:   "yes",
	shmmap.CreatorGone:    "no",
}

// creatorJSON is the "creator" field for each state; CreatorNone has none.
var creatorJSON = map[shmmap.Creator]string{
	shmmap.CreatorUnknown: "unknown",
	shmmap.CreatorAlive:   "alive",
	shmmap.CreatorGone:    "gone",
}

func rows(segs []shmmap.Segment) []row {
	out := make([]row, 0, len(segs))
	for _, s := range segs {
		out = append(out, row{
			Key:       escape(s.Key),
			KeyBase64: []byte(s.Key),
			Size:      s.Size,
			Mode:      fmt.Sprintf("%#o", uint32(s.Mode)),
			UID:       s.UID,
			Owner:     owner(s.UID),
			Changed:   s.Changed.UTC(),
			Creator:   creatorJSON[s.Creator],
		})
	}
	return out
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		report(stderr, err)
		return 1
	}
	return 0
}

// escape returns name with every byte that is not part of a printable UTF-8
// character written as in a Go string literal, and a backslash as \\: the
// form in which ls prints names and rm takes them. It is reversible:
// unescape(escape(name)) == name for any bytes.
func escape(name string) string {
	return quote(name, true)
}

// printable is escape but for backslashes, which it leaves as they are: for
// text, such as an error message, that is shown but never read back.
func printable(s string) string {
	return quote(s, false)
}

func quote(s string, backslash bool) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1: // a byte of invalid UTF-8
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteString(s[:n])
		case strings.ContainsRune("\a\b\f\n\r\t\v", r):
			b.WriteByte('\\')
			b.WriteByte("abfnrtv"[strings.IndexRune("\a\b\f\n\r\t\v", r)])
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		s = s[n:]
	}
	return b.String()
}

// unescape undoes escape. A backslash starts one of the escapes of Go's
// string literals but \' and \"; every other byte stands for itself.
func unescape(s string) (string, error) {
	b := make([]byte, 0, len(s))
	for len(s) > 0 {
		if s[0] != '\\' {
			b = append(b, s[0])
			s = s[1:]
			continue
		}
		r, multibyte, tail, err := strconv.UnquoteChar(s, 0)
		if err != nil {
			return "", errors.New("malformed escape " + printable(s[:min(len(s), len(`\UNNNNNNNN`))]))
		}
		if multibyte {
			b = utf8.AppendRune(b, r)
		} else {
			b = append(b, byte(r)) // \xNN or \NNN: a byte, perhaps not UTF-8
		}
		s = tail
	}
	return string(b), nil
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

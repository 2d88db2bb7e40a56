package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// jsonOutput writes messages as the REST gateway does (protojson, lowerCamel
// names, every field present), indented for people who read it too.
var jsonOutput = protojson.MarshalOptions{EmitUnpopulated: true, Multiline: true, Indent: "  "}

// printJSON writes m as JSON on stdout.
func (a *app) printJSON(m proto.Message) error {
	b, err := jsonOutput.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// table starts an aligned table on stdout; Flush it when done.
func (a *app) table(header ...string) *tabwriter.Writer {
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(w, strings.Join(header, "\t"))
	}
	return w
}

// row writes one row of a table. Cells are made one line and lose control
// characters, so that a hostile description can neither forge rows nor send
// escape sequences to the terminal.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, oneLine(c))
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// relative says when t is, from now, as people say it: "in 6 days",
// "3 hours ago"; unset when t is not set. Amounts are rounded down, so a
// 7-day token created a moment ago expires "in 6 days".
func relative(t *timestamppb.Timestamp, now time.Time, unset string) string {
	if t == nil {
		return unset
	}
	d := t.AsTime().Sub(now)
	if d >= 0 {
		return "in " + amount(d)
	}
	if -d < time.Minute {
		return "just now"
	}
	return amount(-d) + " ago"
}

// when is a time as a date and its relative form: "2026-12-07 18:30 UTC
// (in 6 days)".
func when(t *timestamppb.Timestamp, now time.Time, unset string) string {
	if t == nil {
		return unset
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04 MST") + " (" + relative(t, now, unset) + ")"
}

// amount is a duration in its largest whole unit, from "less than a minute"
// to years; days up to 99 (the presets are 7, 30 and 90 days).
func amount(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return plural(int64(d/time.Minute), "minute")
	case d < day:
		return plural(int64(d/time.Hour), "hour")
	case d < 100*day:
		return plural(int64(d/day), "day")
	case d < 730*day:
		return plural(int64(d/(30*day)), "month")
	}
	return plural(int64(d/(365*day)), "year")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// days writes a lifespan as people say it: "7 days", "12h0m0s", "unlimited".
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "unlimited"
	case d%day == 0:
		return plural(int64(d/day), "day")
	}
	return d.String()
}

// secretFile is a file made ready for a secret before the call that returns
// it, so that a path that cannot be written fails before the secret exists.
// The secret is written to a temporary file (mode 0600) in the same
// directory and renamed over the target: the file is complete or absent,
// and never readable by others.
type secretFile struct {
	path string
	tmp  *os.File
}

// prepareSecretFile creates the temporary file beside path.
func prepareSecretFile(path string) (*secretFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	return &secretFile{path: path, tmp: tmp}, nil
}

// write stores the secret and puts the file in place.
func (f *secretFile) write(secret string) error {
	_, err := f.tmp.WriteString(secret + "\n")
	if err == nil {
		err = f.tmp.Sync()
	}
	if cerr := f.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	name := f.tmp.Name()
	f.tmp = nil
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("--secret-file: the secret could not be saved, regenerate the token: %w", err)
	}
	return nil
}

// discard removes the temporary file when no secret came.
func (f *secretFile) discard() {
	if f != nil && f.tmp != nil {
		f.tmp.Close()
		os.Remove(f.tmp.Name())
	}
}

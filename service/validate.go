package service

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
)

// Field limits. The API documents each on its field; every one is
// checked before anything is stored.
const (
	maxNameLen        = 100
	maxDescriptionLen = 1000
	maxPermissions    = 1000
	maxActionsPerCall = 1000
	defaultPageSize   = 50
	maxPageSize       = 1000
	maxGracePeriod    = 24 * time.Hour
	maxMaskPaths      = 20
)

// What an enum field that holds no known value is told.
const (
	badKind = "must be TOKEN_KIND_API or TOKEN_KIND_ADMIN"
	badType = "must be TOKEN_TYPE_READ_ONLY, TOKEN_TYPE_FULL_ACCESS or TOKEN_TYPE_CUSTOM"
)

// cleanName trims a name and reports what is wrong with it, or "".
func cleanName(name string) (string, string) {
	name = strings.TrimSpace(name)
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return name, "must be valid UTF-8"
	case n == 0:
		return name, "is required"
	case n > maxNameLen:
		return name, fmt.Sprintf("must be at most %d characters (got %d)", maxNameLen, n)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return name, "must not contain control characters"
	}
	if i := strings.IndexFunc(name, invisibleInName); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return name, fmt.Sprintf("must not contain invisible format, separator or bidirectional control characters (found %U)", r)
	}
	return name, ""
}

// invisibleInName reports a character that would let two names look the
// same on screen while differing underneath ("Root" and "Root\u200b"), or
// reorder what is shown: format characters (Unicode Cf, which hold the
// zero-width and bidirectional controls), line and paragraph separators (Zl,
// Zp), and any other bidirectional control.
func invisibleInName(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Bidi_Control)
}

// cleanDescription trims a description and reports what is wrong with it,
// or "". Line breaks and tabs are allowed, other control characters are not.
func cleanDescription(d string) (string, string) {
	d = strings.TrimSpace(d)
	switch n := utf8.RuneCountInString(d); {
	case !utf8.ValidString(d):
		return d, "must be valid UTF-8"
	case n > maxDescriptionLen:
		return d, fmt.Sprintf("must be at most %d characters (got %d)", maxDescriptionLen, n)
	}
	if strings.ContainsFunc(d, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }) {
		return d, "must not contain control characters other than line breaks and tabs"
	}
	return d, ""
}

// checkLifespan maps an API lifespan to a duration (0 = unlimited) and
// reports, listing the allowed values, when it is not one of the presets.
func (s *Service) checkLifespan(d *durationpb.Duration) (time.Duration, string) {
	if d == nil {
		return 0, ""
	}
	if err := d.CheckValid(); err == nil {
		if v := d.AsDuration(); slices.Contains(s.lifespans, v) {
			return v, ""
		}
	}
	return 0, "must be one of " + s.lifespanChoices()
}

func (s *Service) lifespanChoices() string {
	parts := make([]string, 0, len(s.lifespans)+1)
	for _, l := range s.lifespans {
		parts = append(parts, fmt.Sprintf(`"%ds" (%s)`, int64(l/time.Second), formatDays(l)))
	}
	parts = append(parts, "unset (unlimited)")
	return strings.Join(parts, ", ")
}

// formatDays writes a duration as days when it is a whole number of them.
func formatDays(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		if d == day {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

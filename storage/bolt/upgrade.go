package bolt

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// Renaming on a name index rebuild.
const (
	// UpgradeCallerName is the CallerName of the audit event recorded for
	// a token renamed by a name index rebuild.
	UpgradeCallerName = "tokend schema upgrade"
	// maxNameRunes is the longest name the service accepts; a renamed
	// token stays within it.
	maxNameRunes = 100
)

// nameIndexCurrent reports whether bucketTokenNames was built with the
// storage.NameKey of this build.
func nameIndexCurrent(tx *bbolt.Tx) bool {
	return bytes.Equal(tx.Bucket(bucketMeta).Get(keyNameKeyProbe), []byte(storage.NameKey(nameKeyProbe)))
}

// rebuildNameIndex rebuilds bucketTokenNames from the token records with
// this build's storage.NameKey, and records the rule it used. Nothing is
// lost when two stored names share a key under the new rule: tokens are
// taken oldest first (create time, then id), the first keeps its name, and
// each later one is renamed to its name with the visible suffix
// " (duplicate N)", N from 2 up to the first free key, its base shortened
// if needed to stay within maxNameRunes. Each rename gets an audit event
// (operation AuditUpdateToken, field "name", caller UpgradeCallerName) at
// time now; its id, secret hashes and permissions are untouched, so it keeps
// working and an admin can rename it. It returns the number of renames.
func rebuildNameIndex(tx *bbolt.Tx, now time.Time) (int, error) {
	var tokens []*storage.Token
	err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		t, err := decodeToken(v)
		if err != nil {
			return fmt.Errorf("token %q: %w", k, err)
		}
		tokens = append(tokens, t)
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Slice(tokens, func(i, j int) bool {
		a, b := tokens[i], tokens[j]
		if !a.CreateTime.Equal(b.CreateTime) {
			return a.CreateTime.Before(b.CreateTime)
		}
		return a.ID < b.ID
	})
	if err := tx.DeleteBucket(bucketTokenNames); err != nil {
		return 0, err
	}
	names, err := tx.CreateBucket(bucketTokenNames)
	if err != nil {
		return 0, err
	}
	renamed := 0
	for _, t := range tokens {
		key := storage.NameKey(t.Name)
		if names.Get([]byte(key)) != nil {
			oldName := t.Name
			for n := 2; names.Get([]byte(key)) != nil; n++ {
				t.Name = withSuffix(oldName, " (duplicate "+strconv.Itoa(n)+")")
				key = storage.NameKey(t.Name)
			}
			rec, err := encodeToken(t)
			if err != nil {
				return 0, fmt.Errorf("token %q: %w", t.ID, err)
			}
			if err := tx.Bucket(bucketTokens).Put([]byte(t.ID), rec); err != nil {
				return 0, err
			}
			ev := &storage.AuditEvent{
				Time: now, CallerName: UpgradeCallerName, Operation: storage.AuditUpdateToken,
				TargetID: t.ID, TargetName: t.Name, Fields: []string{"name"},
			}
			if _, err := putAuditEvent(tx, ev); err != nil {
				return 0, err
			}
			renamed++
		}
		if err := names.Put([]byte(key), []byte(t.ID)); err != nil {
			return 0, err
		}
	}
	return renamed, tx.Bucket(bucketMeta).Put(keyNameKeyProbe, []byte(storage.NameKey(nameKeyProbe)))
}

// withSuffix returns name followed by suffix, the name cut (at a rune
// boundary, trailing spaces dropped) so that the result has at most
// maxNameRunes runes.
func withSuffix(name, suffix string) string {
	room := maxNameRunes - utf8.RuneCountInString(suffix)
	if utf8.RuneCountInString(name) > room {
		runes := []rune(name)
		name = strings.TrimRight(string(runes[:max(room, 0)]), " ")
	}
	return name + suffix
}

package etcd

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/tokend/tokend/storage"
)

// Records are JSON objects with a format version "v": readable with etcdctl,
// and independent of the Go types. Times are unix nanoseconds (absent for
// the zero time), decoded in UTC; a new layout gets a new version, and the
// decoder keeps reading the old ones.

const (
	tokenFormat  = 1
	actionFormat = 1
	auditFormat  = 1
)

type tokenRecord struct {
	V                  int      `json:"v"`
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Description        string   `json:"description,omitempty"`
	Kind               uint8    `json:"kind"`
	Type               uint8    `json:"type"`
	Permissions        []string `json:"permissions,omitempty"`
	Lifespan           int64    `json:"lifespan,omitempty"`
	ExpireTime         *int64   `json:"expire,omitempty"`
	CreateTime         *int64   `json:"create,omitempty"`
	UpdateTime         *int64   `json:"update,omitempty"`
	LastUsedTime       *int64   `json:"lastUsed,omitempty"`
	SecretHash         []byte   `json:"hash"`
	SecretHint         string   `json:"hint,omitempty"`
	PreviousSecretHash []byte   `json:"previousHash,omitempty"`
	PreviousExpireTime *int64   `json:"previousExpire,omitempty"`
	HashKeyID          string   `json:"hashKeyId,omitempty"`
}

// The times a unix-nanosecond int64 can hold (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encodeTime returns t as unix nanoseconds, nil for the zero time; it fails
// for a time outside the storable range.
func encodeTime(name string, t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("%s %s is outside the storable range %s to %s", name, t.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
	}
	n := t.UnixNano()
	return &n, nil
}

func decodeTime(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// encodeToken returns the record of t. It fails only for a time that
// cannot be stored.
func encodeToken(t *storage.Token) ([]byte, error) {
	r := tokenRecord{
		V: tokenFormat, ID: t.ID, Name: t.Name, Description: t.Description,
		Kind: uint8(t.Kind), Type: uint8(t.Type), Permissions: t.Permissions, Lifespan: int64(t.Lifespan),
		SecretHash: t.SecretHash, SecretHint: t.SecretHint, HashKeyID: t.HashKeyID,
	}
	if len(t.PreviousSecretHash) > 0 {
		r.PreviousSecretHash = t.PreviousSecretHash
	}
	var err error
	for _, f := range []struct {
		name string
		t    time.Time
		dst  **int64
	}{
		{"expire time", t.ExpireTime, &r.ExpireTime}, {"create time", t.CreateTime, &r.CreateTime},
		{"update time", t.UpdateTime, &r.UpdateTime}, {"last used time", t.LastUsedTime, &r.LastUsedTime},
		{"previous expire time", t.PreviousExpireTime, &r.PreviousExpireTime},
	} {
		if *f.dst, err = encodeTime(f.name, f.t); err != nil {
			return nil, fmt.Errorf("token %q: %w", t.ID, err)
		}
	}
	return json.Marshal(&r)
}

// decodeToken decodes a record made by encodeToken. It returns an error
// wrapping storage.ErrCorrupt when b is not one. Empty hashes and lists
// decode as nil.
func decodeToken(b []byte) (*storage.Token, error) {
	var r tokenRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: token record: %v", storage.ErrCorrupt, err)
	}
	if r.V != tokenFormat {
		return nil, fmt.Errorf("%w: unknown token format version %d", storage.ErrCorrupt, r.V)
	}
	t := &storage.Token{
		ID: r.ID, Name: r.Name, Description: r.Description,
		Kind: storage.Kind(r.Kind), Type: storage.Type(r.Type), Permissions: r.Permissions,
		Lifespan: time.Duration(r.Lifespan), SecretHint: r.SecretHint, HashKeyID: r.HashKeyID,
		ExpireTime: decodeTime(r.ExpireTime), CreateTime: decodeTime(r.CreateTime),
		UpdateTime: decodeTime(r.UpdateTime), LastUsedTime: decodeTime(r.LastUsedTime),
		PreviousExpireTime: decodeTime(r.PreviousExpireTime),
	}
	if len(r.SecretHash) > 0 {
		t.SecretHash = r.SecretHash
	}
	if len(r.PreviousSecretHash) > 0 {
		t.PreviousSecretHash = r.PreviousSecretHash
	}
	if len(t.Permissions) == 0 {
		t.Permissions = nil
	}
	return t, nil
}

type actionRecord struct {
	V            int    `json:"v"`
	Description  string `json:"description,omitempty"`
	RegisterTime *int64 `json:"registered,omitempty"`
}

func encodeAction(a storage.Action) ([]byte, error) {
	reg, err := encodeTime("register time", a.RegisterTime)
	if err != nil {
		return nil, fmt.Errorf("action %q: %w", a.ID, err)
	}
	return json.Marshal(&actionRecord{V: actionFormat, Description: a.Description, RegisterTime: reg})
}

func decodeAction(id string, b []byte) (storage.Action, error) {
	var r actionRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return storage.Action{}, fmt.Errorf("%w: action %q: %v", storage.ErrCorrupt, id, err)
	}
	if r.V != actionFormat {
		return storage.Action{}, fmt.Errorf("%w: action %q: unknown format version %d", storage.ErrCorrupt, id, r.V)
	}
	return storage.Action{ID: id, Description: r.Description, RegisterTime: decodeTime(r.RegisterTime)}, nil
}

type auditRecord struct {
	V          int      `json:"v"`
	Time       *int64   `json:"time,omitempty"`
	CallerID   string   `json:"callerId,omitempty"`
	CallerName string   `json:"callerName,omitempty"`
	Operation  uint8    `json:"op"`
	TargetID   string   `json:"targetId,omitempty"`
	TargetName string   `json:"targetName,omitempty"`
	Fields     []string `json:"fields,omitempty"`
}

func encodeAuditEvent(ev *storage.AuditEvent) ([]byte, error) {
	at, err := encodeTime("audit event time", ev.Time)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&auditRecord{
		V: auditFormat, Time: at, CallerID: ev.CallerID, CallerName: ev.CallerName,
		Operation: uint8(ev.Operation), TargetID: ev.TargetID, TargetName: ev.TargetName, Fields: ev.Fields,
	})
}

// decodeAuditEvent decodes the record of the event committed at rev.
func decodeAuditEvent(rev int64, b []byte) (*storage.AuditEvent, error) {
	var r auditRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: audit event: %v", storage.ErrCorrupt, err)
	}
	if r.V != auditFormat {
		return nil, fmt.Errorf("%w: audit event: unknown format version %d", storage.ErrCorrupt, r.V)
	}
	return &storage.AuditEvent{
		ID: auditID(rev), Time: decodeTime(r.Time), CallerID: r.CallerID, CallerName: r.CallerName,
		Operation: storage.AuditOperation(r.Operation), TargetID: r.TargetID, TargetName: r.TargetName,
		Fields: r.Fields,
	}, nil
}

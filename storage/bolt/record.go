package bolt

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/tokend/tokend/storage"
)

// Records are encoded by hand rather than with encoding/json or gob: start-up
// replays every token through the change feed, so decoding must be cheap, and
// a fixed, versioned layout keeps the disk format independent of the Go types.
//
// A record starts with a format-version byte. Strings and byte slices are a
// uvarint length followed by the bytes; lists are a uvarint count followed by
// the elements; durations are a varint of nanoseconds; times are a tag byte,
// timeZero for the zero time or timeUnixNano followed by a varint of Unix
// nanoseconds (decoded in UTC). A new layout gets a new version byte, and the
// decoder keeps reading the old ones.

// Format versions. Version 2 of the token record appends the previous
// secret hash and its expiry to version 1, version 3 the hash key id;
// decodeToken reads all three.
const (
	tokenFormatV1    = 1
	tokenFormatV2    = 2
	tokenFormatV3    = 3
	actionFormatV1   = 1
	auditFormatV1    = 1
	keyCheckFormatV1 = 1
)

// Time tags.
const (
	timeZero     = 0
	timeUnixNano = 1
)

// The times a varint of Unix nanoseconds can hold (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encodeToken returns the record of t, in the latest format. It fails only
// for a time that cannot be stored (see checkTime). An empty
// PreviousSecretHash is stored as none.
func encodeToken(t *storage.Token) ([]byte, error) {
	for _, ft := range []struct {
		name string
		t    time.Time
	}{
		{"expire time", t.ExpireTime}, {"create time", t.CreateTime}, {"update time", t.UpdateTime},
		{"last used time", t.LastUsedTime}, {"previous expire time", t.PreviousExpireTime},
	} {
		if err := checkTime(ft.name, ft.t); err != nil {
			return nil, err
		}
	}
	size := 1 + 6*binary.MaxVarintLen64 + 6*(binary.MaxVarintLen64+1) + 2 +
		len(t.ID) + len(t.Name) + len(t.Description) + len(t.SecretHash) + len(t.SecretHint) + len(t.PreviousSecretHash) +
		len(t.HashKeyID)
	for _, p := range t.Permissions {
		size += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, size)
	b = append(b, tokenFormatV3)
	b = appendString(b, t.ID)
	b = appendString(b, t.Name)
	b = appendString(b, t.Description)
	b = append(b, byte(t.Kind), byte(t.Type))
	b = binary.AppendUvarint(b, uint64(len(t.Permissions)))
	for _, p := range t.Permissions {
		b = appendString(b, p)
	}
	b = binary.AppendVarint(b, int64(t.Lifespan))
	b = appendTime(b, t.ExpireTime)
	b = appendTime(b, t.CreateTime)
	b = appendTime(b, t.UpdateTime)
	b = appendTime(b, t.LastUsedTime)
	b = appendBytes(b, t.SecretHash)
	b = appendString(b, t.SecretHint)
	// Version 2 from here.
	b = appendBytes(b, t.PreviousSecretHash)
	b = appendTime(b, t.PreviousExpireTime)
	// Version 3 from here.
	b = appendString(b, t.HashKeyID)
	return b, nil
}

// decodeToken decodes a record made by encodeToken, in any format version
// it has written. It never panics, copies everything it returns out of b,
// and returns an error wrapping storage.ErrCorrupt when b is not a valid
// record. Empty hashes decode as nil.
func decodeToken(b []byte) (*storage.Token, error) {
	t := &storage.Token{}
	if err := decodeTokenInto(t, b, nil); err != nil {
		return nil, err
	}
	return t, nil
}

// decodeTokenInto is decodeToken into a zero Token the caller allocated
// (the replay allocates them a batch at a time). With an arena, the hashes
// are copied into the arena's shared buffer and a hash key id equal to the
// previous record's is shared with it.
func decodeTokenInto(t *storage.Token, b []byte, a *arena) error {
	d := decoder{b: b}
	version := d.byte("format version")
	if d.err == nil && (version < tokenFormatV1 || version > tokenFormatV3) {
		return fmt.Errorf("%w: unknown token format version %d", storage.ErrCorrupt, version)
	}
	t.ID = d.string("id")
	t.Name = d.string("name")
	t.Description = d.string("description")
	t.Kind = storage.Kind(d.byte("kind"))
	t.Type = storage.Type(d.byte("type"))
	t.Permissions = d.strings("permission")
	t.Lifespan = time.Duration(d.varint("lifespan"))
	t.ExpireTime = d.time("expire time")
	t.CreateTime = d.time("create time")
	t.UpdateTime = d.time("update time")
	t.LastUsedTime = d.time("last used time")
	t.SecretHash = a.copied(d.bytes("secret hash"))
	t.SecretHint = d.string("secret hint")
	if version >= tokenFormatV2 {
		t.PreviousSecretHash = a.copied(d.bytes("previous secret hash"))
		t.PreviousExpireTime = d.time("previous expire time")
	}
	if version >= tokenFormatV3 {
		t.HashKeyID = a.keyID(d.bytes("hash key id"))
	}
	return d.finish("token")
}

// encodeAction returns the record of a; the id is the key, not part of it.
func encodeAction(a storage.Action) ([]byte, error) {
	if err := checkTime("register time", a.RegisterTime); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(a.Description)+1+binary.MaxVarintLen64)
	b = append(b, actionFormatV1)
	b = appendString(b, a.Description)
	b = appendTime(b, a.RegisterTime)
	return b, nil
}

// decodeAction decodes the record of the action with that id. Like
// decodeToken it never panics and returns errors wrapping storage.ErrCorrupt.
func decodeAction(id string, b []byte) (storage.Action, error) {
	d := decoder{b: b}
	if v := d.byte("format version"); d.err == nil && v != actionFormatV1 {
		return storage.Action{}, fmt.Errorf("%w: unknown action format version %d", storage.ErrCorrupt, v)
	}
	a := storage.Action{ID: id}
	a.Description = d.string("description")
	a.RegisterTime = d.time("register time")
	if err := d.finish("action"); err != nil {
		return storage.Action{}, err
	}
	return a, nil
}

// encodeAuditEvent returns the record of ev; the ID is derived from the
// key, not part of the record. It fails only for a time that cannot be
// stored.
func encodeAuditEvent(ev *storage.AuditEvent) ([]byte, error) {
	if err := checkTime("audit event time", ev.Time); err != nil {
		return nil, err
	}
	size := 1 + (binary.MaxVarintLen64 + 1) + 5*binary.MaxVarintLen64 + 1 +
		len(ev.CallerID) + len(ev.CallerName) + len(ev.TargetID) + len(ev.TargetName)
	for _, f := range ev.Fields {
		size += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, size)
	b = append(b, auditFormatV1)
	b = appendTime(b, ev.Time)
	b = appendString(b, ev.CallerID)
	b = appendString(b, ev.CallerName)
	b = append(b, byte(ev.Operation))
	b = appendString(b, ev.TargetID)
	b = appendString(b, ev.TargetName)
	b = binary.AppendUvarint(b, uint64(len(ev.Fields)))
	for _, f := range ev.Fields {
		b = appendString(b, f)
	}
	return b, nil
}

// decodeAuditEvent decodes the record of the audit event stored under key.
// Like decodeToken it never panics, copies what it returns, and returns
// errors wrapping storage.ErrCorrupt, for a key that is not an audit key
// too.
func decodeAuditEvent(key, b []byte) (*storage.AuditEvent, error) {
	if len(key) != auditKeyLen {
		return nil, fmt.Errorf("%w: audit event key of %d bytes, want %d", storage.ErrCorrupt, len(key), auditKeyLen)
	}
	d := decoder{b: b}
	if v := d.byte("format version"); d.err == nil && v != auditFormatV1 {
		return nil, fmt.Errorf("%w: unknown audit event format version %d", storage.ErrCorrupt, v)
	}
	ev := &storage.AuditEvent{ID: auditID(key)}
	ev.Time = d.time("time")
	ev.CallerID = d.string("caller id")
	ev.CallerName = d.string("caller name")
	ev.Operation = storage.AuditOperation(d.byte("operation"))
	ev.TargetID = d.string("target id")
	ev.TargetName = d.string("target name")
	ev.Fields = d.strings("field")
	if err := d.finish("audit event"); err != nil {
		return nil, err
	}
	return ev, nil
}

// encodeKeyCheck returns the record of c.
func encodeKeyCheck(c storage.KeyCheck) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(c.KeyID)+len(c.Check))
	b = append(b, keyCheckFormatV1)
	b = appendString(b, c.KeyID)
	return appendBytes(b, c.Check)
}

// decodeKeyCheck decodes a record made by encodeKeyCheck. Like decodeToken
// it never panics and returns errors wrapping storage.ErrCorrupt.
func decodeKeyCheck(b []byte) (storage.KeyCheck, error) {
	d := decoder{b: b}
	if v := d.byte("format version"); d.err == nil && v != keyCheckFormatV1 {
		return storage.KeyCheck{}, fmt.Errorf("%w: unknown key check format version %d", storage.ErrCorrupt, v)
	}
	c := storage.KeyCheck{KeyID: d.string("key id"), Check: d.copiedBytes("check")}
	if err := d.finish("key check"); err != nil {
		return storage.KeyCheck{}, err
	}
	return c, nil
}

// checkTime reports whether t can be encoded: the zero time or a time whose
// Unix nanoseconds fit in an int64.
func checkTime(name string, t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("%s %s is outside the storable range %s to %s", name, t.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, timeZero)
	}
	b = append(b, timeUnixNano)
	return binary.AppendVarint(b, t.UnixNano())
}

// decoder reads a record front to back. The first failure is kept in err and
// turns every later read into a no-op returning a zero value, so decode
// functions read straight through and check err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", storage.ErrCorrupt, what)
		d.b = nil
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a slice of the record itself: callers copy what they keep.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// copiedBytes returns a copy of a byte slice of the record, or nil for an
// empty one.
func (d *decoder) copiedBytes(what string) []byte {
	if v := d.bytes(what); len(v) > 0 {
		return append([]byte(nil), v...)
	}
	return nil
}

// arena spares the replay of many records the small allocations that
// outlive a record only until the subscriber has read it: the hashes are
// copied into one buffer per batch, and the hash key id, the same for
// most tokens, is allocated once per run of equal ids. A nil arena
// allocates each as decodeToken always did.
type arena struct {
	buf  []byte // room for copies of hashes; its slices are handed out
	last string // the last hash key id decoded
}

// arenaChunk is the size of the arena's buffers: the hashes of a replay
// batch.
const arenaChunk = replayBatch * 32

// copied returns a copy of v, or nil for an empty v.
func (a *arena) copied(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	if a == nil {
		return append([]byte(nil), v...)
	}
	if cap(a.buf)-len(a.buf) < len(v) {
		a.buf = make([]byte, 0, max(arenaChunk, len(v)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, v...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// keyID returns v as a string, the previous one if it is equal.
func (a *arena) keyID(v []byte) string {
	if a == nil {
		return string(v)
	}
	if string(v) != a.last {
		a.last = string(v)
	}
	return a.last
}

func (d *decoder) string(what string) string {
	return string(d.bytes(what))
}

// strings reads a list of strings, nil when empty.
func (d *decoder) strings(what string) []string {
	// Every string takes at least one byte, which bounds the count by what
	// is left and keeps a garbage count from allocating gigabytes.
	n := d.uvarint(what + " count")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what + " count exceeds record")
		return nil
	}
	if n == 0 {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		list[i] = d.string(what)
	}
	return list
}

func (d *decoder) time(what string) time.Time {
	switch d.byte(what) {
	case timeZero:
		return time.Time{}
	case timeUnixNano:
		n := d.varint(what)
		if d.err != nil {
			return time.Time{}
		}
		return time.Unix(0, n).UTC()
	default:
		d.fail(what)
		return time.Time{}
	}
}

// finish returns the first failure, or a failure if bytes are left over: a
// record is exactly one value.
func (d *decoder) finish(record string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("%s record: %w", record, d.err)
	}
	return nil
}

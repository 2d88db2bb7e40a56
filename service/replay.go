package service

import (
	"context"
	"runtime/debug"
	"sync"
)

// tokenCounter is implemented by stores that can count their tokens
// cheaply; New uses the count to size the index before the replay.
type tokenCounter interface {
	CountTokens(ctx context.Context) (int, error)
}

// The garbage collector is paused while the stored tokens are replayed into
// the index. During the replay the heap only grows: nearly everything
// allocated is kept by the index, so each collection would mark a larger
// live heap to free almost nothing, and with the default GOGC the runtime
// runs one every time the heap doubles, on the same cores as the replay.
// Pausing it (GOGC off) rather than raising GOGC leaves no cycle at all; a
// memory limit set with GOMEMLIMIT still holds, because the runtime collects
// when the heap nears it even with GOGC off. What the replay leaves behind
// (each record's decoded copy, about the size of what the index keeps) is
// collected by the first cycle after the pause, concurrently with serving.
// Several services may replay at once in one process (tests), so the pause
// is counted: the first to pause saves the setting, the last to resume
// restores it.
var gcPause struct {
	mu      sync.Mutex
	holders int
	saved   int // the GOGC percentage to restore
}

// pauseGC turns the garbage collector's GOGC trigger off until the returned
// function is called.
func pauseGC() (resume func()) {
	gcPause.mu.Lock()
	if gcPause.holders == 0 {
		gcPause.saved = debug.SetGCPercent(-1)
	}
	gcPause.holders++
	gcPause.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			gcPause.mu.Lock()
			gcPause.holders--
			if gcPause.holders == 0 {
				debug.SetGCPercent(gcPause.saved)
			}
			gcPause.mu.Unlock()
		})
	}
}

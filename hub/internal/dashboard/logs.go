package dashboard

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// LogEntry is one structured log line of the hub.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"` // "error", "info" or "debug" (V(1) and above)
	Logger  string    `json:"logger"`
	Message string    `json:"message"`
	Cluster string    `json:"cluster,omitempty"` // the "cluster" key, when the line has one
	Error   string    `json:"error,omitempty"`
	// Values are the other key/value pairs, formatted "key=value".
	Values []string `json:"values,omitempty"`
}

// LogBuffer keeps the last entries logged through Tee. It is safe for concurrent use.
type LogBuffer struct {
	now func() time.Time

	mu      sync.Mutex
	entries []LogEntry // a ring of cap(entries)
	next    int
	full    bool
}

// NewLogBuffer returns a buffer of the last n entries (1000 when n <= 0).
func NewLogBuffer(n int) *LogBuffer {
	if n <= 0 {
		n = 1000
	}
	return &LogBuffer{now: time.Now, entries: make([]LogEntry, n)}
}

func (b *LogBuffer) add(e LogEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries[b.next] = e
	b.next = (b.next + 1) % len(b.entries)
	if b.next == 0 {
		b.full = true
	}
}

// LogFilter selects entries; zero fields select everything.
type LogFilter struct {
	Cluster string
	Level   string // "error", "info" or "debug": that level and the more severe ones
	Limit   int
}

var levelRank = map[string]int{"error": 0, "info": 1, "debug": 2}

// Entries returns the entries that match f, newest first.
func (b *LogBuffer) Entries(f LogFilter) []LogEntry {
	b.mu.Lock()
	var all []LogEntry
	if b.full {
		all = append(all, b.entries[b.next:]...)
	}
	all = append(all, b.entries[:b.next]...)
	b.mu.Unlock()
	slices.Reverse(all)
	max, ok := levelRank[f.Level]
	if !ok {
		max = len(levelRank)
	}
	out := []LogEntry{}
	for _, e := range all {
		if f.Cluster != "" && e.Cluster != f.Cluster {
			continue
		}
		if levelRank[e.Level] > max {
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// Clusters returns the cluster names that appear in the buffer, sorted.
func (b *LogBuffer) Clusters() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range b.entries {
		if e.Cluster != "" && !seen[e.Cluster] {
			seen[e.Cluster] = true
			out = append(out, e.Cluster)
		}
	}
	slices.Sort(out)
	return out
}

// Tee returns a logger that logs through l and also records into b every entry l logs, and
// every entry up to V(verbosity) even when l is quieter.
func Tee(l logr.Logger, b *LogBuffer, verbosity int) logr.Logger {
	sink := l.GetSink()
	return logr.New(&teeSink{next: sink, buf: b, verbosity: verbosity})
}

// teeSink is a logr.LogSink that records entries and passes them on to next (which may be nil).
type teeSink struct {
	next      logr.LogSink
	buf       *LogBuffer
	verbosity int
	name      string
	values    []any
	depth     int
}

func (s *teeSink) Init(info logr.RuntimeInfo) {
	s.depth = info.CallDepth
	if s.next != nil {
		s.next.Init(logr.RuntimeInfo{CallDepth: info.CallDepth + 1})
	}
}

func (s *teeSink) Enabled(level int) bool {
	return level <= s.verbosity || (s.next != nil && s.next.Enabled(level))
}

func (s *teeSink) Info(level int, msg string, kv ...any) {
	lvl := "info"
	if level > 0 {
		lvl = "debug"
	}
	if level <= s.verbosity {
		s.record(lvl, msg, nil, kv)
	}
	if s.next != nil && s.next.Enabled(level) {
		s.next.Info(level, msg, kv...)
	}
}

func (s *teeSink) Error(err error, msg string, kv ...any) {
	s.record("error", msg, err, kv)
	if s.next != nil {
		s.next.Error(err, msg, kv...)
	}
}

func (s *teeSink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.values = append(slices.Clip(s.values), kv...)
	if s.next != nil {
		c.next = s.next.WithValues(kv...)
	}
	return &c
}

func (s *teeSink) WithName(name string) logr.LogSink {
	c := *s
	if s.name == "" {
		c.name = name
	} else {
		c.name = s.name + "." + name
	}
	if s.next != nil {
		c.next = s.next.WithName(name)
	}
	return &c
}

func (s *teeSink) record(level, msg string, err error, kv []any) {
	e := LogEntry{Time: s.buf.now(), Level: level, Logger: s.name, Message: msg}
	if err != nil {
		e.Error = err.Error()
	}
	all := append(slices.Clip(s.values), kv...)
	for i := 0; i+1 < len(all); i += 2 {
		k := fmt.Sprint(all[i])
		v := formatValue(all[i+1])
		if k == "cluster" && e.Cluster == "" {
			e.Cluster = v
			continue
		}
		e.Values = append(e.Values, k+"="+v)
	}
	s.buf.add(e)
}

// formatValue prints a log value the way a person reads it: klog.KObj as namespace/name,
// errors by their message, the rest with %v.
func formatValue(v any) string {
	switch x := v.(type) {
	case fmt.Stringer:
		return x.String()
	case error:
		return x.Error()
	case string:
		return x
	default:
		s := fmt.Sprintf("%v", v)
		return strings.TrimSpace(s)
	}
}
